import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { deliverStream } from '../pipeline/deliver.js';
import { checkDirectory, ensureDirectory, FileOutputTarget, isPlainFileName, OutputFolderError, parseFileOutputUri } from '../sinks/file.js';
import { listFiles, temporaryDirectory } from './support/export.js';

describe('file:// sink', () => {
  it('shows the file under its final name only after commit', async () => {
    const directory = await temporaryDirectory();
    const object = await new FileOutputTarget(directory).open({ name: 'a.zip', contentType: 'application/zip', metadata: {} });
    object.stream.end('payload');
    expect((await listFiles(directory)).every((name) => name.startsWith('.a.zip.'))).toBe(true);
    const stored = await object.commit();
    expect(await listFiles(directory)).toEqual(['a.zip']);
    expect(stored.bytes).toBe(7);
    expect(await readFile(fileURLToPath(stored.uri), 'utf8')).toBe('payload');
  });

  it('leaves nothing when a delivery is aborted at any point around its start', async () => {
    const directory = await temporaryDirectory();
    const target = new FileOutputTarget(directory);
    const abortWays: ((abort: () => void) => void)[] = [
      (abort) => abort(),
      (abort) => queueMicrotask(abort),
      (abort) => process.nextTick(abort),
      (abort) => setImmediate(abort),
    ];
    for (let round = 0; round < 25; round++) {
      for (const [way, schedule] of abortWays.entries()) {
        const controller = new AbortController();
        const opening = target.open({ name: `r${round}-${way}.zip`, contentType: 'application/zip', metadata: {} });
        schedule(() => controller.abort());
        const object = await opening;
        const source = Readable.from((async function* () {
          for (let i = 0; i < 100; i++) yield Buffer.alloc(64 * 1024, i);
        })());
        await expect(deliverStream(source, [], object, controller.signal)).rejects.toThrow(/abort/i);
      }
    }
    expect(await listFiles(directory)).toEqual([]);
  });

  it('leaves nothing when discarded right after opening, and discarding twice is harmless', async () => {
    const directory = await temporaryDirectory();
    const object = await new FileOutputTarget(directory).open({ name: 'c.zip', contentType: 'application/zip', metadata: {} });
    await object.discard();
    await object.discard();
    expect(await listFiles(directory)).toEqual([]);
  });

  it('removes the temporary file when the stream was destroyed with an error just before discard (regression: SIGTERM left a .partial file)', async () => {
    const directory = await temporaryDirectory();
    const object = await new FileOutputTarget(directory).open({ name: 'e.zip', contentType: 'application/zip', metadata: {} });
    object.stream.write('some bytes');
    object.stream.on('error', () => {}); // as pipeline() does
    object.stream.destroy(new Error('aborted by the pipeline'));
    await object.discard();
    expect(await listFiles(directory)).toEqual([]);
  });

  it('discards while a write is still on its way to the disk, with nobody listening for errors (regression: discard never returned)', async () => {
    const directory = await temporaryDirectory();
    const object = await new FileOutputTarget(directory).open({ name: 'w.zip', contentType: 'application/zip', metadata: {} });
    // The write completes after the destroy and reports ERR_STREAM_DESTROYED; with no
    // 'error' listener that became an uncaught exception and the stream never emitted 'close'.
    object.stream.write(Buffer.alloc(8 * 1024 * 1024));
    object.stream.destroy();
    await object.discard();
    expect(await listFiles(directory)).toEqual([]);
  });

  it('never overwrites an existing file', async () => {
    const directory = await temporaryDirectory();
    const target = new FileOutputTarget(directory);
    const first = await target.open({ name: 'd.zip', contentType: 'application/zip', metadata: {} });
    first.stream.end('first');
    await first.commit();
    const second = await target.open({ name: 'd.zip', contentType: 'application/zip', metadata: {} });
    second.stream.end('second');
    await expect(second.commit()).rejects.toThrow(/already exists/);
    expect(await listFiles(directory)).toEqual(['d.zip']);
    expect(await readFile(`${directory}/d.zip`, 'utf8')).toBe('first');
  });

  it('accepts only plain file names and file:// folders', async () => {
    expect(isPlainFileName('export.zip')).toBe(true);
    for (const name of ['', '../x', 'a/b', '.hidden']) expect(isPlainFileName(name)).toBe(false);
    await expect(new FileOutputTarget(await temporaryDirectory()).open({ name: '../escape.zip', contentType: 'application/zip', metadata: {} })).rejects.toThrow(TypeError);
    expect(parseFileOutputUri('file://./exports')).toBe('./exports');
    expect(parseFileOutputUri('file:///srv/my%20exports')).toBe('/srv/my exports');
    expect(parseFileOutputUri('gs://bucket')).toBeUndefined();
  });

  it('creates a missing folder one level at a time, concurrently too, and says which it created', async () => {
    const root = await temporaryDirectory();
    const target = join(root, 'a', 'b', 'c');
    const results = await Promise.all([ensureDirectory(target), ensureDirectory(target), ensureDirectory(target)]);
    expect(results.flat().sort()).toEqual([join(root, 'a'), join(root, 'a', 'b'), target]);
    expect(existsSync(target)).toBe(true);
    expect(await ensureDirectory(target)).toEqual([]);
  });

  it('fails at once under /proc (where mkdir -p never returned on Node 24) and removes the folders it created on a failure', async () => {
    const started = performance.now();
    await expect(ensureDirectory('/proc/audit-export/x')).rejects.toThrow(/cannot create the folder \/proc\/audit-export\/x: .*\(ENOENT\)/);
    expect(performance.now() - started).toBeLessThan(2000);
    const root = await temporaryDirectory();
    // `a` can be created; the next name is longer than any file system allows.
    const error = await ensureDirectory(join(root, 'a', 'x'.repeat(300))).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OutputFolderError);
    expect(error).toMatchObject({ code: 'ENAMETOOLONG', usage: true });
    expect(await listFiles(root)).toEqual([]);
  }, 10_000);

  it('checks a folder without leaving anything, and names a file in the way', async () => {
    const root = await temporaryDirectory();
    await checkDirectory(join(root, 'new', 'folder'));
    await checkDirectory(root);
    expect(await listFiles(root)).toEqual([]);
    await writeFile(join(root, 'file'), 'x');
    await expect(checkDirectory(join(root, 'file', 'sub'))).rejects.toThrow(`${join(root, 'file')} is not a folder (it is a file), so ${join(root, 'file', 'sub')} cannot be created`);
    await expect(new FileOutputTarget(join(root, 'file'), '--out').open({ name: 'a.zip', contentType: 'application/zip', metadata: {} })).rejects.toThrow(
      `--out: ${join(root, 'file')} is not a folder (it is a file)`,
    );
    expect(await listFiles(root)).toEqual(['file']);
  });

  it('refuses file:// URIs that are not a path', () => {
    expect(() => parseFileOutputUri('file://%E0%A4%A')).toThrow(/not a valid percent-encoded path/);
    expect(() => parseFileOutputUri('file://a%00b')).toThrow(/without NUL characters/);
    expect(() => parseFileOutputUri('file://')).toThrow(/Expected a folder after file:\/\//);
  });
});
