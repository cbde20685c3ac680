// Throughput of the zip sink against plain zlib on CSV-like text, in one process and one run.
//
//   node_modules/.bin/node node_modules/.bin/tsc -p tsconfig.json --outDir /tmp/audit-export-bench
//   node_modules/.bin/node /tmp/audit-export-bench/bench/zip-throughput.js [megabytes=300] [level=6] [cases]
//
// `cases` is a comma-separated subset of the case names below; default all.
//
// Cases, each fed the same 64 KiB chunks and piped into a sink that discards:
//   crc32          zlib.crc32 alone, the main-thread share of the zip sink's work;
//   deflateRaw     zlib.createDeflateRaw piped to the sink, the lower bound for one deflate stream;
//   zip            createZipStream, one entry;
//   generate       producing the chunks as CSV text on the fly, nothing else;
//   generate+zip   both: close to max(generate, zip) if compression overlaps production, their sum if not.
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32, createDeflateRaw } from 'node:zlib';
import { createZipStream, type ZipEntryChunk } from '../sinks/zip.js';

const CHUNK_BYTES = 64 * 1024;
const megabytes = Number(process.argv[2] ?? 300);
const level = Number(process.argv[3] ?? 6);
const only = process.argv[4]?.split(',');
const totalChunks = Math.ceil((megabytes * 1024 * 1024) / CHUNK_BYTES);

/** A small deterministic PRNG, so every run compresses the same text. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'hello thanks order delivery refund please status tracking number payment card invoice address ' +
  'cancel change product size colour available store today tomorrow agent customer support help ' +
  'question problem received package missing damaged return exchange discount coupon account'
).split(' ');
const SENDERS = ['contact', 'agent', 'bot'];

/** One chunk of CSV rows shaped like the messages export, exactly {@link CHUNK_BYTES} long. */
function csvChunk(random: () => number, firstId: number): Buffer {
  const rows: string[] = [];
  let bytes = 0;
  let id = firstId;
  while (bytes < CHUNK_BYTES) {
    const words = 3 + Math.floor(random() * 25);
    let body = '';
    for (let i = 0; i < words; i++) body += (i === 0 ? '' : ' ') + WORDS[Math.floor(random() * WORDS.length)];
    const at = new Date(1_700_000_000_000 + id * 7919).toISOString();
    const row =
      `${id},${100_000 + Math.floor(id / 40)},${at},${SENDERS[id % 3]},text,"${body}",,,` +
      `${random() < 0.2 ? String(Math.floor(random() * 500)) : ''}\r\n`;
    rows.push(row);
    bytes += Buffer.byteLength(row);
    id++;
  }
  return Buffer.from(rows.join('')).subarray(0, CHUNK_BYTES);
}

// A pool of distinct chunks, cycled: production then costs nothing in the pure compression cases.
const random = mulberry32(42);
const pool = Array.from({ length: 64 }, (_, i) => csvChunk(random, i * 1000));

function* pooled(): Generator<Buffer> {
  for (let i = 0; i < totalChunks; i++) yield pool[i % pool.length]!;
}

function* generated(): Generator<Buffer> {
  const fresh = mulberry32(7);
  for (let i = 0; i < totalChunks; i++) yield csvChunk(fresh, i * 1000);
}

function* asEntry(chunks: Iterable<Buffer>): Generator<ZipEntryChunk> {
  for (const data of chunks) yield { entry: 'messages.csv', data };
}

function nullSink(): Writable & { bytes: number } {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      sink.bytes += chunk.length;
      callback();
    },
  }) as Writable & { bytes: number };
  sink.bytes = 0;
  return sink;
}

let lastCrc = 0;

interface Result {
  readonly seconds: number;
  readonly outputBytes: number;
}

const cases: Record<string, () => Promise<Result>> = {
  async crc32() {
    let crc = 0;
    for (const chunk of pooled()) crc = crc32(chunk, crc);
    lastCrc = crc; // keeps the loop observable
    return { seconds: 0, outputBytes: 4 };
  },
  async deflateRaw() {
    const sink = nullSink();
    await pipeline(Readable.from(pooled()), createDeflateRaw({ level }), sink);
    return { seconds: 0, outputBytes: sink.bytes };
  },
  async zip() {
    const sink = nullSink();
    await pipeline(Readable.from(asEntry(pooled())), createZipStream({ level }), sink);
    return { seconds: 0, outputBytes: sink.bytes };
  },
  async generate() {
    let bytes = 0;
    for (const chunk of generated()) bytes += chunk.length;
    return { seconds: 0, outputBytes: bytes };
  },
  async 'generate+zip'() {
    const sink = nullSink();
    await pipeline(Readable.from(asEntry(generated())), createZipStream({ level }), sink);
    return { seconds: 0, outputBytes: sink.bytes };
  },
};

async function measure(run: () => Promise<Result>): Promise<Result> {
  const started = performance.now();
  const result = await run();
  return { ...result, seconds: (performance.now() - started) / 1000 };
}

const inputMegabytes = (totalChunks * CHUNK_BYTES) / 1e6;
console.log(
  `node ${process.version}, ${inputMegabytes.toFixed(0)} MB of CSV-like text in 64 KiB chunks, level ${level}, ` +
    `best of 3 runs (MB = 10^6 bytes of input)`,
);
for (const [name, run] of Object.entries(cases)) {
  if (only !== undefined && !only.includes(name)) continue;
  const runs: Result[] = [];
  for (let i = 0; i < 3; i++) runs.push(await measure(run));
  const best = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const ratio = name === 'deflateRaw' || name.includes('zip') ? `, output ${(best.outputBytes / 1e6).toFixed(1)} MB` : '';
  console.log(
    `${name.padEnd(14)} ${(inputMegabytes / best.seconds).toFixed(0).padStart(6)} MB/s  ` +
      `(${runs.map((r) => r.seconds.toFixed(2)).join(' s, ')} s${ratio})`,
  );
}
if (lastCrc === -1) console.log('unreachable: CRC-32 is unsigned');
