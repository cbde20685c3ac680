import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { DeflateRaw, ZlibOptions } from 'node:zlib';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createZipStream, type ZipEntryChunk } from '../sinks/zip.js';
import { readWithYauzl, zipToBuffer } from './support/zip-readers.js';

// Every deflate stream the zip writer creates, and every error one emits, so the tests can check
// that destroying the zip stream releases zlib and that nothing fails afterwards.
const zlibSpy = vi.hoisted(() => ({ created: [] as DeflateRaw[], errors: [] as Error[] }));
vi.mock('node:zlib', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:zlib')>();
  return {
    ...actual,
    createDeflateRaw(options?: ZlibOptions): DeflateRaw {
      const deflate = actual.createDeflateRaw(options);
      zlibSpy.created.push(deflate);
      deflate.on('error', (error: Error) => zlibSpy.errors.push(error));
      return deflate;
    },
  };
});

beforeEach(() => {
  zlibSpy.created.length = 0;
  zlibSpy.errors.length = 0;
});

/** Lets zlib finish work already on the thread pool, so late errors would show up. */
const settle = (): Promise<void> => delay(100);

const text = (i: number): Buffer => Buffer.from(`${i},"some text ${i}",${'y'.repeat(i % 61)}\n`.repeat(200));

describe('ZipStream destroy', () => {
  it('an AbortSignal through pipeline destroys the zip stream and its deflate stream mid-entry', async () => {
    const controller = new AbortController();
    let produced = 0;
    async function* endless(): AsyncGenerator<ZipEntryChunk> {
      for (let i = 0; ; i++) {
        produced++;
        yield { entry: i < 50 ? 'first.csv' : 'second.csv', data: text(i) };
      }
    }
    let received = 0;
    const slowSink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        if (received > 64 * 1024) controller.abort();
        setImmediate(callback);
      },
    });
    const zip = createZipStream();
    await expect(pipeline(Readable.from(endless()), zip, slowSink, { signal: controller.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
    await settle();
    expect(zip.destroyed).toBe(true);
    expect(produced).toBeGreaterThan(50);
    expect(zlibSpy.created.length).toBe(2);
    expect(zlibSpy.created.every((deflate) => deflate.destroyed)).toBe(true);
    expect(zlibSpy.errors).toEqual([]);
  });

  it('destroying while writes wait for a reader frees deflate', async () => {
    const zip = createZipStream();
    const pool = randomBytes(1024 * 1024);
    for (let i = 0; i < 16 && zip.write({ entry: 'blocked.bin', data: pool.subarray(i * 64 * 1024, (i + 1) * 64 * 1024) }); i++);
    await delay(300);
    expect(zip.writableNeedDrain).toBe(true);
    const closed = once(zip, 'close');
    zip.destroy();
    await closed;
    await settle();
    expect(zlibSpy.created.length).toBe(1);
    expect(zlibSpy.created[0]!.destroyed).toBe(true);
    expect(zlibSpy.errors).toEqual([]);
  });

  it('destroy(error) while an entry waits to be closed reports that error and frees deflate', async () => {
    const zip = createZipStream();
    // Incompressible data fills the readable side, so the first entry cannot finish without a reader.
    zip.write({ entry: 'a.bin', data: randomBytes(64 * 1024) });
    let secondWritten = false;
    zip.write({ entry: 'b.bin', data: Buffer.from('b') }, () => {
      secondWritten = true;
    });
    await delay(300);
    expect(secondWritten).toBe(false);
    expect(zip.entries).toEqual([]);
    expect(zlibSpy.created.length).toBe(1);

    const failed = once(zip, 'error');
    zip.destroy(new Error('disk full'));
    const [error] = (await failed) as [Error];
    expect(error.message).toBe('disk full');
    await settle();
    expect(zlibSpy.created.length).toBe(1);
    expect(zlibSpy.created[0]!.destroyed).toBe(true);
    expect(zlibSpy.errors).toEqual([]);
  });

  it('an invalid chunk mid-stream fails the pipeline and frees deflate', async () => {
    const zip = createZipStream();
    const chunks = [
      { entry: 'a.csv', data: text(1) },
      { entry: 'b.csv', data: text(2) },
      { entry: 'a.csv', data: text(3) },
    ];
    await expect(zipToBuffer(zip, chunks)).rejects.toThrow('Zip entry "a.csv" was already written and closed');
    await settle();
    expect(zlibSpy.created.length).toBe(2);
    expect(zlibSpy.created.every((deflate) => deflate.destroyed)).toBe(true);
    expect(zlibSpy.errors).toEqual([]);
  });

  it('destroy before any write closes without creating a deflate stream', async () => {
    const zip = createZipStream();
    const closed = once(zip, 'close');
    zip.destroy();
    await closed;
    expect(zlibSpy.created).toEqual([]);
  });

  it('a finished archive leaves no deflate stream alive', async () => {
    const zip = createZipStream();
    const archive = await zipToBuffer(
      zip,
      ['a.csv', 'b.csv', 'c.csv'].map((entry, i) => ({ entry, data: text(i) })),
    );
    expect((await readWithYauzl(archive)).map((r) => r.entry.fileName)).toEqual(['a.csv', 'b.csv', 'c.csv']);
    expect(zlibSpy.created.length).toBe(3);
    expect(zlibSpy.created.every((deflate) => deflate.destroyed)).toBe(true);
  });
});
