/**
 * Reads back a zip the benchmark kept: the sha256 of its members' uncompressed bytes in order (the
 * CSV, to compare between rows and between bench runs before and after a change), and what
 * `zip -6` makes of those same bytes (the size the zip rows' ratio is over).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import yauzl from 'yauzl';
import type { CsvDigest } from './report.js';

/** `zip -6 -q - -` fed by `write`, counted; resolves to its output's length. */
function zipSix(): { write(chunk: Buffer): Promise<void>; end(): Promise<number> } {
  const child = spawn('zip', ['-6', '-q', '-', '-'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let bytes = 0;
  child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
  const closed = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  // A zip that dies mid-stream shows as its exit code in end(), not as an EPIPE crash here.
  child.stdin.on('error', () => {});
  return {
    async write(chunk) {
      if (!child.stdin.write(chunk)) await Promise.race([new Promise((resolve) => child.stdin.once('drain', resolve)), closed]);
    },
    async end() {
      child.stdin.end();
      const code = await closed;
      if (code !== 0) throw new Error(`zip -6 exited with code ${code}`);
      return bytes;
    },
  };
}

/**
 * Hashes every member of the zip at `path` in the order of its central directory (yauzl, which
 * checks each member's size against it), and with `rezip` also feeds the bytes to `zip -6`.
 */
export async function csvDigest(path: string, rezip: boolean): Promise<CsvDigest & { zip6Bytes?: number }> {
  const zipfile = await yauzl.openPromise(path, { lazyEntries: true, strictFileNames: true, validateEntrySizes: true });
  const hash = createHash('sha256');
  const zip = rezip ? zipSix() : undefined;
  let csvBytes = 0;
  try {
    for await (const entry of zipfile.eachEntry()) {
      for await (const chunk of await zipfile.openReadStreamPromise(entry)) {
        const bytes = chunk as Buffer;
        hash.update(bytes);
        csvBytes += bytes.length;
        await zip?.write(bytes);
      }
    }
  } finally {
    zipfile.close();
  }
  const zip6Bytes = await zip?.end();
  return { sha256: hash.digest('hex'), csvBytes, ...(zip6Bytes === undefined ? {} : { zip6Bytes }) };
}
