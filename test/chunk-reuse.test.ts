import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createZipStream, type ZipEntryChunk } from '../sinks/zip.js';
import { ByteOutput } from '../transforms/byte-output.js';
import { readWithYauzl, zipToBuffer } from './support/zip-readers.js';

// The CSV stage writes its chunks into buffers the zip hands back once deflate has read them
// (transforms/byte-output.ts, sinks/zip.ts): no chunk may be overwritten while anything still reads it.

/** Writes `bytes` into `out` and takes them as pieces. */
function written(out: ByteOutput, bytes: Buffer): Buffer[] {
  out.bytes(bytes, 0, bytes.length);
  return out.take();
}

describe('ByteOutput buffer reuse', () => {
  it('writes into a buffer again once its piece came back, not before', () => {
    const out = new ByteOutput(16);
    const [first] = written(out, Buffer.from('first'));
    const [second] = written(out, Buffer.from('second'));
    expect(second!.buffer).not.toBe(first!.buffer);
    out.release(first!);
    // 'third' goes into the buffer already current; the one after it, into the released one.
    const [third] = written(out, Buffer.from('third'));
    const [fourth] = written(out, Buffer.from('fourth'));
    expect(third!.buffer).not.toBe(first!.buffer);
    expect(fourth!.buffer).toBe(first!.buffer);
    expect([second, third, fourth].map(String)).toEqual(['second', 'third', 'fourth']);
  });

  it('keeps a buffer while any of its pieces is out (a shared value cut it in two)', () => {
    const out = new ByteOutput(64);
    const big = Buffer.from('a large value shared, not copied');
    out.bytes(Buffer.from('head'), 0, 4);
    out.share(big, 0, big.length);
    out.bytes(Buffer.from('tail'), 0, 4);
    const pieces = out.take();
    expect(pieces.map(String)).toEqual(['head', String(big), 'tail']);
    const [head, shared, tail] = pieces as [Buffer, Buffer, Buffer];
    expect(head.buffer).toBe(tail.buffer);
    out.release(shared); // COPY input, never the output's: ignored.
    out.release(head);
    for (let round = 0; round < 20; round++) {
      const fresh = written(out, Buffer.from(`round ${round}`));
      expect(fresh.every((piece) => piece.buffer !== tail.buffer)).toBe(true);
      for (const piece of fresh) out.release(piece);
    }
    expect(tail.toString()).toBe('tail');
    out.release(tail);
    const reused = [written(out, Buffer.from('x')), written(out, Buffer.from('y'))].flat();
    expect(reused.some((piece) => piece.buffer === tail.buffer)).toBe(true);
  });

  it('never reuses a piece that was kept, and keeps at most 8 released buffers', () => {
    const out = new ByteOutput(8);
    const kept = written(out, Buffer.from('kept'));
    const released = Array.from({ length: 20 }, (_, i) => written(out, Buffer.from(`r${i}`))).flat();
    for (const piece of released) out.release(piece);
    const later = Array.from({ length: 20 }, (_, i) => written(out, Buffer.from(`l${i}`))).flat();
    const releasedBuffers = new Set(released.map((piece) => piece.buffer));
    const reusedBuffers = new Set(later.map((piece) => piece.buffer).filter((buffer) => releasedBuffers.has(buffer)));
    expect(reusedBuffers.size).toBe(8);
    expect(later.every((piece) => piece.buffer !== kept[0]!.buffer)).toBe(true);
    expect(kept.map(String)).toEqual(['kept']);
  });

  it('a buffer grown for a large record hands its bytes out and is never reused', () => {
    const out = new ByteOutput(8);
    const large = Buffer.alloc(100, 0x61);
    out.bytes(Buffer.from('ab'), 0, 2);
    out.bytes(large, 0, large.length);
    const pieces = out.take();
    expect(Buffer.concat(pieces).toString()).toBe(`ab${'a'.repeat(100)}`);
    for (const piece of pieces) out.release(piece);
    const next = written(out, Buffer.from('next'));
    expect(next.map(String)).toEqual(['next']);
    expect(Buffer.concat(pieces).toString()).toBe(`ab${'a'.repeat(100)}`);
  });

  it('every piece still out holds what was written into it, whatever the order of writes, shares, takes and releases', () => {
    const step = fc.oneof(
      fc.record({ op: fc.constant('bytes' as const), length: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ op: fc.constant('share' as const), length: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ op: fc.constant('take' as const) }),
      fc.record({ op: fc.constant('release' as const), which: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), fc.integer({ min: 1, max: 32 }), (steps, capacity) => {
        const out = new ByteOutput(capacity);
        const piecesOut: { piece: Buffer; expected: Buffer }[] = [];
        let counter = 0;
        for (const s of steps) {
          if (s.op === 'bytes') {
            const bytes = Buffer.alloc(s.length, counter++ % 251);
            out.bytes(bytes, 0, bytes.length);
          } else if (s.op === 'share') {
            const bytes = Buffer.alloc(s.length, counter++ % 251);
            out.share(bytes, 0, bytes.length);
          } else if (s.op === 'take') {
            for (const piece of out.take()) piecesOut.push({ piece, expected: Buffer.from(piece) });
          } else if (piecesOut.length > 0) {
            const [released] = piecesOut.splice(s.which % piecesOut.length, 1);
            out.release(released!.piece);
          }
          for (const { piece, expected } of piecesOut) expect(piece.equals(expected)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('the zip hands chunks back', () => {
  it('releases each chunk once, after deflate read it; a producer that then overwrites it still gets its bytes archived', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const released: number[] = [];
    const chunks: ZipEntryChunk[] = [];
    for (let offset = 0, index = 0; offset < data.length; offset += 16 * 1024, index++) {
      const copy = Buffer.from(data.subarray(offset, offset + 16 * 1024));
      chunks.push({
        entry: index < 64 ? 'a.bin' : 'b.bin',
        data: copy,
        release: () => {
          released.push(index);
          copy.fill(0xee); // what a reuse would do
        },
      });
    }
    chunks.push({ entry: 'b.bin', data: Buffer.alloc(0), release: () => released.push(-1) });
    const archive = await zipToBuffer(createZipStream(), chunks);
    expect([...released].sort((x, y) => x - y)).toEqual([-1, ...chunks.slice(0, -1).map((_, index) => index)]);
    const entries = await readWithYauzl(archive);
    expect(entries.map((entry) => entry.entry.fileName)).toEqual(['a.bin', 'b.bin']);
    expect(Buffer.concat(entries.map((entry) => entry.data)).equals(data)).toBe(true);
  });

  it('does not release the chunks deflate had not read when the stream is destroyed', async () => {
    const zip = createZipStream();
    zip.resume();
    let releases = 0;
    const total = 64;
    for (let index = 0; index < total; index++) {
      zip.write({ entry: 'a.bin', data: randomBytes(64 * 1024), release: () => (releases += 1) });
    }
    zip.destroy(new Error('the sink failed'));
    await once(zip, 'close').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(releases).toBeLessThan(total);
  });

  it('refuses a release that is not a function, naming the entry', async () => {
    const chunk = { entry: 'a.csv', data: Buffer.from('x'), release: 'later' } as unknown as ZipEntryChunk;
    await expect(zipToBuffer(createZipStream(), [chunk])).rejects.toThrow(/`release` of entry "a.csv" to be a function, got/);
  });
});
