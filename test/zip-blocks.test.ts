import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { CompressCallback, DeflateRaw, InputType, ZlibOptions } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createZipStream, DEFAULT_BLOCK_BYTES, DEFAULT_CONCURRENCY, type ZipEntryChunk } from '../sinks/zip.js';
import { inspectWithPython, readWithYauzl, testWithUnzip, zipToBuffer } from './support/zip-readers.js';

// The zip writer compresses an entry's first block through a DeflateRaw stream and every later
// block through a one-shot zlib.deflateRaw call. This mock counts both as blocks in flight, records
// the order in which the one-shot calls complete, and lets a test delay, hold or fail given calls.
const zlibControl = vi.hoisted(() => ({
  inFlight: 0,
  maxInFlight: 0,
  /** One-shot calls made, numbered from 0 in call order. */
  calls: 0,
  /** One-shot call numbers in the order their callbacks ran. */
  completed: [] as number[],
  delayMs: (_call: number): number => 0,
  hold: (_call: number): boolean => false,
  fail: (_call: number): Error | undefined => undefined,
  /** Callbacks of held calls: run one to deliver that call's result. */
  held: [] as Array<() => void>,
  streams: [] as DeflateRaw[],
  streamErrors: [] as Error[],
}));
vi.mock('node:zlib', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:zlib')>();
  const enter = (): void => {
    zlibControl.inFlight++;
    zlibControl.maxInFlight = Math.max(zlibControl.maxInFlight, zlibControl.inFlight);
  };
  return {
    ...actual,
    createDeflateRaw(options?: ZlibOptions): DeflateRaw {
      const deflate = actual.createDeflateRaw(options);
      zlibControl.streams.push(deflate);
      deflate.on('error', (error: Error) => zlibControl.streamErrors.push(error));
      // The stream's block is in flight from end(data) until 'end'.
      const end = deflate.end.bind(deflate) as (data?: Buffer) => DeflateRaw;
      deflate.end = ((data?: Buffer) => {
        enter();
        deflate.prependOnceListener('end', () => zlibControl.inFlight--);
        return end(data);
      }) as typeof deflate.end;
      return deflate;
    },
    deflateRaw(buffer: InputType, options: ZlibOptions, callback: CompressCallback): void {
      const call = zlibControl.calls++;
      enter();
      actual.deflateRaw(buffer, options, (error, result) => {
        const deliver = (): void => {
          zlibControl.inFlight--;
          zlibControl.completed.push(call);
          const failure = zlibControl.fail(call);
          if (failure !== undefined) callback(failure, Buffer.alloc(0));
          else callback(error, result);
        };
        if (zlibControl.hold(call)) zlibControl.held.push(deliver);
        else if (zlibControl.delayMs(call) > 0) setTimeout(deliver, zlibControl.delayMs(call));
        else deliver();
      });
    },
  };
});

beforeEach(() => {
  Object.assign(zlibControl, {
    inFlight: 0,
    maxInFlight: 0,
    calls: 0,
    completed: [],
    delayMs: () => 0,
    hold: () => false,
    fail: () => undefined,
    held: [],
    streams: [],
    streamErrors: [],
  });
});

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'audit-export-zip-blocks-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

const BLOCK = 32 * 1024;

/** Distinct CSV-like text: compressible, and different at every offset. */
function csvText(bytes: number, seed = 0): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = seed; length < bytes; i++) {
    const line = `${i},"message ${i * 7919} from ${i % 13}",${'z'.repeat(i % 41)}\r\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

function split(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size));
  return chunks;
}

/** A sink that takes everything at once, counting what it got. */
function collector(): Writable & { parts: Buffer[] } {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      sink.parts.push(chunk);
      callback();
    },
  }) as Writable & { parts: Buffer[] };
  sink.parts = [];
  return sink;
}

describe('ZipStream block options', () => {
  it.each([
    [`Expected \`blockBytes\` to be an integer from 32768 to 16777216, got 32767`, { blockBytes: 32767 }],
    [`Expected \`blockBytes\` to be an integer from 32768 to 16777216, got 16777217`, { blockBytes: 16 * 1024 * 1024 + 1 }],
    [`Expected \`blockBytes\` to be an integer from 32768 to 16777216, got 40000.5`, { blockBytes: 40000.5 }],
    [`Expected \`blockBytes\` to be an integer from 32768 to 16777216, got "65536"`, { blockBytes: '65536' }],
    ['Expected `concurrency` to be an integer from 1 to 16, got 0', { concurrency: 0 }],
    ['Expected `concurrency` to be an integer from 1 to 16, got 17', { concurrency: 17 }],
    ['Expected `concurrency` to be an integer from 1 to 16, got NaN', { concurrency: Number.NaN }],
    ['Expected `concurrency` to be an integer from 1 to 16, got null', { concurrency: null }],
  ])('throws %s', (message, options) => {
    expect(() => createZipStream(options as never)).toThrow(new TypeError(message));
  });

  it('defaults to the measured block size and concurrency', () => {
    expect([DEFAULT_BLOCK_BYTES, DEFAULT_CONCURRENCY]).toEqual([128 * 1024, 2]);
  });
});

describe('ZipStream parallel deflate', () => {
  it('round-trips data of 0, n x block and n x block +/- 1 bytes, in chunks of 1 byte to 1 MiB, through three readers', async () => {
    const sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 1, 2 * BLOCK, 2 * BLOCK + 1, 3 * BLOCK, 3 * BLOCK + 1];
    const chunkSizes = [1, 1000, BLOCK, 1024 * 1024];
    const expected: Array<{ name: string; data: Buffer }> = [];
    const chunks: ZipEntryChunk[] = [];
    for (const size of sizes) {
      // One-byte chunks only for the sizes near one block: they cost a write each.
      for (const chunkSize of size <= BLOCK + 1 ? chunkSizes : chunkSizes.slice(1)) {
        const name = `size-${size}-chunks-${chunkSize}.csv`;
        const data = csvText(size, size + chunkSize);
        expected.push({ name, data });
        if (size === 0) chunks.push({ entry: name, data });
        else for (const piece of split(data, chunkSize)) chunks.push({ entry: name, data: piece });
      }
    }
    const zip = createZipStream({ blockBytes: BLOCK, concurrency: 3 });
    const archive = await zipToBuffer(zip, chunks);

    const read = await readWithYauzl(archive);
    expect(read.map((r) => r.entry.fileName)).toEqual(expected.map((e) => e.name));
    for (const [i, { data }] of expected.entries()) expect(read[i]!.data.equals(data)).toBe(true);
    expect(zip.entries.map((e) => e.uncompressedBytes)).toEqual(expected.map((e) => e.data.length));
    // Every one-shot call is a block after an entry's first: sum of ceil(size / block) - 1 over the entries.
    const laterBlocks = expected.reduce((sum, { data }) => sum + Math.max(0, Math.ceil(data.length / BLOCK) - 1), 0);
    expect(zlibControl.calls).toBe(laterBlocks);

    const path = join(workDir, 'boundaries.zip');
    await writeFile(path, archive);
    const python = await inspectWithPython(path);
    expect(python.bad).toBeNull();
    expect(python.entries.map((e) => e.size)).toEqual(expected.map((e) => e.data.length));
    expect((await testWithUnzip(path)).code).toBe(0);
  });

  it('primes each block with the 32 KiB before it, so matches reach across block boundaries', async () => {
    // 16 KiB of random bytes, repeated over eight blocks: each block alone could not shrink it at
    // all, so only back-references into the previous block's data (the dictionary) make it small.
    const pattern = randomBytes(16 * 1024);
    const data = Buffer.concat(Array.from({ length: 16 }, () => pattern));
    const zip = createZipStream({ blockBytes: BLOCK, concurrency: 4 });
    const archive = await zipToBuffer(zip, split(data, 10_000).map((piece) => ({ entry: 'repeated.bin', data: piece })));
    const [read] = await readWithYauzl(archive);
    expect(read!.data.equals(data)).toBe(true);
    expect(zlibControl.calls).toBe(7);
    // The first 16 KiB as literals, then a few bytes of matches per block.
    expect(zip.entries[0]!.compressedBytes).toBeLessThan(pattern.length + 2048);
  });

  it('emits blocks in order when a later block finishes first', async () => {
    // The first one-shot call (the entry's second block) completes last.
    zlibControl.delayMs = (call) => (call === 0 ? 200 : 0);
    const data = csvText(5 * BLOCK + 123);
    const zip = createZipStream({ blockBytes: BLOCK, concurrency: 4 });
    const archive = await zipToBuffer(zip, split(data, 7_000).map((piece) => ({ entry: 'ordered.csv', data: piece })));
    // Out of order on the pool: some later block came back before the first one-shot block did.
    expect(zlibControl.completed.indexOf(0)).toBeGreaterThan(0);
    const [read] = await readWithYauzl(archive);
    expect(read!.data.equals(data)).toBe(true);
  });

  it.each([1, 2, 3])('keeps at most %i blocks in flight, and uses them all', async (concurrency) => {
    // Slow blocks, so the writer would start more if it did not count them.
    zlibControl.delayMs = () => 20;
    const data = csvText(12 * BLOCK);
    const zip = createZipStream({ blockBytes: BLOCK, concurrency });
    const archive = await zipToBuffer(zip, split(data, 16 * 1024).map((piece) => ({ entry: 'bounded.csv', data: piece })));
    expect(zlibControl.maxInFlight).toBe(concurrency);
    const [read] = await readWithYauzl(archive);
    expect(read!.data.equals(data)).toBe(true);
  });

  it('stops accepting when nobody reads: about (concurrency + 1) blocks and the queue, whatever the options', async () => {
    const pool = randomBytes(8 * 1024 * 1024);
    const concurrency = 3;
    const blockBytes = 256 * 1024;
    const zip = createZipStream({ blockBytes, concurrency });
    let accepted = 0;
    for (let at = 0; at < pool.length; at += 64 * 1024) {
      accepted += 64 * 1024;
      if (!zip.write({ entry: 'random.bin', data: pool.subarray(at, at + 64 * 1024) })) {
        const drained = await Promise.race([once(zip, 'drain').then(() => true), delay(500).then(() => false)]);
        if (!drained) break;
      }
    }
    // Blocks in flight or waiting + the block filling + 4 queued chunks + what the readable buffer holds.
    expect(accepted).toBeLessThanOrEqual((concurrency + 1) * blockBytes + 4 * 64 * 1024 + 2 * 64 * 1024);
    expect(zip.writableNeedDrain).toBe(true);
    expect(zip.readableLength).toBeLessThanOrEqual(2 * 64 * 1024 + 100);
    zip.destroy();
    await once(zip, 'close');
  });

  it('destroy with blocks on the thread pool emits nothing afterwards and reports nothing', async () => {
    zlibControl.hold = () => true;
    // Every one-shot block is held; one of them will even come back with an error.
    zlibControl.fail = (call) => (call === 1 ? new Error('late zlib failure') : undefined);
    const zip = createZipStream({ blockBytes: BLOCK, concurrency: 3 });
    const errors: Error[] = [];
    zip.on('error', (error: Error) => errors.push(error));
    let destroyedAt = -1;
    let dataAfterDestroy = 0;
    zip.on('data', () => {
      if (destroyedAt >= 0) dataAfterDestroy++;
    });
    const data = csvText(6 * BLOCK);
    for (const piece of split(data, 16 * 1024)) zip.write({ entry: 'held.csv', data: piece });
    // The first block is out, the next three (calls 0 to 2) are on the pool and cannot come back.
    await vi.waitFor(() => expect(zlibControl.held.length).toBe(3));
    await delay(50);
    expect(zlibControl.held.length).toBe(3);
    destroyedAt = zlibControl.completed.length;
    const closed = once(zip, 'close');
    zip.destroy();
    await closed;
    const bytesAtDestroy = zip.bytesWritten;
    for (const deliver of zlibControl.held) deliver();
    await delay(50);
    expect(zip.bytesWritten).toBe(bytesAtDestroy);
    expect([...zlibControl.completed].sort()).toEqual([0, 1, 2]);
    expect(dataAfterDestroy).toBe(0);
    expect(errors).toEqual([]);
    expect(zlibControl.streams.every((deflate) => deflate.destroyed)).toBe(true);
    expect(zlibControl.streamErrors).toEqual([]);
  });

  it('an error from a block destroys the stream with that error', async () => {
    zlibControl.fail = (call) => (call === 1 ? new Error('zlib: out of memory') : undefined);
    const zip = createZipStream({ blockBytes: BLOCK, concurrency: 2 });
    const data = csvText(8 * BLOCK);
    await expect(
      zipToBuffer(zip, split(data, 16 * 1024).map((piece) => ({ entry: 'failing.csv', data: piece }))),
    ).rejects.toThrow('zlib: out of memory');
    expect(zip.destroyed).toBe(true);
    await delay(50);
    expect(zlibControl.streams.every((deflate) => deflate.destroyed)).toBe(true);
    expect(zlibControl.streamErrors).toEqual([]);
  });

  it('many small entries, each one block or less, in one archive', async () => {
    const sink = collector();
    const zip = createZipStream({ concurrency: 2 });
    const contents = Array.from({ length: 300 }, (_, i) => csvText(i * 97, i));
    const done = once(sink, 'finish');
    zip.pipe(sink);
    for (const [i, data] of contents.entries()) {
      if (!zip.write({ entry: `part-${i}.csv`, data })) await once(zip, 'drain');
    }
    zip.end();
    await done;
    const read = await readWithYauzl(Buffer.concat(sink.parts));
    expect(read.length).toBe(300);
    for (const [i, data] of contents.entries()) expect(read[i]!.data.equals(data)).toBe(true);
    expect(zlibControl.calls).toBe(0);
  });
});
