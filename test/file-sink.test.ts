import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { deliverStream } from '../pipeline/deliver.js';
import { FileOutputTarget, isPlainFileName, parseFileOutputUri } from '../sinks/file.js';
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
});
