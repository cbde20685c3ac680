import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { CompressCallback, InputType, ZlibOptions } from 'node:zlib';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createZipStream, type ZipEntryChunk } from '../sinks/zip.js';
import { readWithYauzl, zipToBuffer } from './support/zip-readers.js';

// Every deflate job the zip writer starts on the thread pool, and how each ended, so the tests can
// check that destroying the zip stream starts no more work, leaves none running and fails nothing.
const zlibSpy = vi.hoisted(() => ({ started: 0, settled: 0, errors: [] as Error[] }));
vi.mock('node:zlib', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:zlib')>();
  return {
    ...actual,
    deflateRaw(buffer: InputType, options: ZlibOptions, callback: CompressCallback): void {
      zlibSpy.started += 1;
      actual.deflateRaw(buffer, options, (error, result) => {
        zlibSpy.settled += 1;
        if (error !== null) zlibSpy.errors.push(error);
        callback(error, result);
      });
    },
  };
});

beforeEach(() => {
  zlibSpy.started = 0;
  zlibSpy.settled = 0;
  zlibSpy.errors.length = 0;
});

/** Lets zlib finish work already on the thread pool, so late errors would show up. */
const settle = (): Promise<void> => delay(100);

/**
 * Call right after the zip stream was destroyed: no deflate job starts any more, the ones on the
 * pool finish (their output dropped), none failed.
 */
async function expectDeflateStopped(): Promise<void> {
  const startedAtDestroy = zlibSpy.started;
  await settle();
  expect(zlibSpy.started).toBe(startedAtDestroy);
  expect(zlibSpy.settled).toBe(zlibSpy.started);
  expect(zlibSpy.errors).toEqual([]);
}

const text = (i: number): Buffer => Buffer.from(`${i},"some text ${i}",${'y'.repeat(i % 61)}\n`.repeat(200));

describe('ZipStream destroy', () => {
  it('an AbortSignal through pipeline destroys the zip stream and stops its deflate jobs mid-entry', async () => {
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
    expect(zip.destroyed).toBe(true);
    await expectDeflateStopped();
    expect(produced).toBeGreaterThan(50);
    // The first entry was finished (one last segment) and the second one started.
    expect(zip.entries.map((entry) => entry.name)).toEqual(['first.csv']);
    expect(zlibSpy.started).toBeGreaterThanOrEqual(2);
  });

  it('destroying while writes wait for a reader stops deflate and drops what it held', async () => {
    const zip = createZipStream();
    const pool = randomBytes(8 * 1024 * 1024);
    for (let i = 0; i < 128 && zip.write({ entry: 'blocked.bin', data: pool.subarray(i * 64 * 1024, (i + 1) * 64 * 1024) }); i++);
    await delay(300);
    expect(zip.writableNeedDrain).toBe(true);
    const startedWhileBlocked = zlibSpy.started;
    expect(startedWhileBlocked).toBeGreaterThanOrEqual(2);
    const closed = once(zip, 'close');
    zip.destroy();
    await closed;
    await expectDeflateStopped();
    expect(zlibSpy.started).toBe(startedWhileBlocked);
  });

  it('destroy(error) while an entry waits to be closed reports that error and stops deflate', async () => {
    const zip = createZipStream();
    // Incompressible data fills every segment, so the first entry cannot finish without a reader.
    const pool = randomBytes(8 * 1024 * 1024);
    for (let i = 0; i < 128 && zip.write({ entry: 'a.bin', data: pool.subarray(i * 64 * 1024, (i + 1) * 64 * 1024) }); i++);
    let secondWritten = false;
    zip.write({ entry: 'b.bin', data: Buffer.from('b') }, () => {
      secondWritten = true;
    });
    await delay(300);
    expect(secondWritten).toBe(false);
    expect(zip.entries).toEqual([]);

    const failed = once(zip, 'error');
    zip.destroy(new Error('disk full'));
    await expectDeflateStopped();
    const [error] = (await failed) as [Error];
    expect(error.message).toBe('disk full');
    expect(secondWritten).toBe(false);
  });

  it('an invalid chunk mid-stream fails the pipeline and stops deflate', async () => {
    const zip = createZipStream();
    const chunks = [
      { entry: 'a.csv', data: text(1) },
      { entry: 'b.csv', data: text(2) },
      { entry: 'a.csv', data: text(3) },
    ];
    await expect(zipToBuffer(zip, chunks)).rejects.toThrow('Zip entry "a.csv" was already written and closed');
    await expectDeflateStopped();
    // a.csv's one segment; b.csv's bytes were still being gathered when the repeated name came.
    expect(zlibSpy.started).toBe(1);
  });

  it('destroy before any write closes without starting a deflate job', async () => {
    const zip = createZipStream();
    const closed = once(zip, 'close');
    zip.destroy();
    await closed;
    await settle();
    expect(zlibSpy.started).toBe(0);
  });

  it('a finished archive leaves no deflate job running', async () => {
    const zip = createZipStream();
    const archive = await zipToBuffer(
      zip,
      ['a.csv', 'b.csv', 'c.csv'].map((entry, i) => ({ entry, data: text(i) })),
    );
    expect((await readWithYauzl(archive)).map((r) => r.entry.fileName)).toEqual(['a.csv', 'b.csv', 'c.csv']);
    // One segment per small entry, each the entry's last.
    expect(zlibSpy.started).toBe(3);
    expect(zlibSpy.settled).toBe(3);
    expect(zlibSpy.errors).toEqual([]);
  });
});
