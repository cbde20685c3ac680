import { execFile } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import yauzl from 'yauzl';
import type { ZipEntryChunk, ZipStream } from '../../sinks/zip.js';

const run = promisify(execFile);

/** Streams `chunks` through `zip` and returns the whole archive. */
export async function zipToBuffer(
  zip: ZipStream,
  chunks: Iterable<ZipEntryChunk> | AsyncIterable<ZipEntryChunk>,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    zip,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        parts.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(parts);
}

/** An entry as yauzl reads it, with its whole content. */
export interface YauzlEntry {
  readonly entry: yauzl.Entry;
  readonly local: yauzl.LocalFileHeader;
  readonly data: Buffer;
}

/**
 * Reads every entry of an archive with yauzl, which validates sizes against the central directory
 * and rejects unsafe names. `readData` decides which entries are decompressed.
 */
export async function readWithYauzl(
  archive: Buffer | string,
  readData: (entry: yauzl.Entry) => boolean = () => true,
): Promise<YauzlEntry[]> {
  const options: yauzl.Options = { lazyEntries: true, strictFileNames: true, validateEntrySizes: true };
  const zipfile =
    typeof archive === 'string' ? await yauzl.openPromise(archive, options) : await yauzl.fromBufferPromise(archive, options);
  const entries: YauzlEntry[] = [];
  try {
    for await (const entry of zipfile.eachEntry()) {
      const local = await zipfile.readLocalFileHeaderPromise(entry);
      let data = Buffer.alloc(0);
      if (readData(entry)) data = Buffer.concat(await (await zipfile.openReadStreamPromise(entry)).toArray());
      entries.push({ entry, local, data });
    }
  } finally {
    zipfile.close();
  }
  return entries;
}

/** What Python's zipfile reports about one entry. */
export interface PythonEntry {
  readonly name: string;
  readonly size: number;
  readonly compressed: number;
  readonly crc: number;
  readonly flags: number;
  readonly method: number;
  readonly extractVersion: number;
  readonly createVersion: number;
  readonly createSystem: number;
  readonly externalAttr: number;
  readonly dateTime: number[];
  readonly headerOffset: number;
  /** The central directory extra fields, hex. */
  readonly extra: string;
  /** SHA-256 of the content, hex, when contents were requested. */
  readonly sha256: string | null;
}

const PYTHON_INSPECT = `
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()  # reads every entry and checks its CRC-32
    hash_contents = sys.argv[2] == '1'
    entries = [{
        'name': i.filename, 'size': i.file_size, 'compressed': i.compress_size, 'crc': i.CRC,
        'flags': i.flag_bits, 'method': i.compress_type, 'extractVersion': i.extract_version,
        'createVersion': i.create_version, 'createSystem': i.create_system, 'externalAttr': i.external_attr,
        'dateTime': list(i.date_time), 'headerOffset': i.header_offset, 'extra': i.extra.hex(),
        'sha256': hashlib.sha256(z.read(i)).hexdigest() if hash_contents else None,
    } for i in z.infolist()]
print(json.dumps({'bad': bad, 'entries': entries}))
`;

async function requireCommand(command: string, install: string): Promise<void> {
  try {
    await run('sh', ['-c', `command -v ${command}`]);
  } catch {
    throw new Error(`\`${command}\` is needed to check archives with an independent reader: ${install}`);
  }
}

/** Opens the archive with Python's zipfile, runs testzip() and lists the entries. */
export async function inspectWithPython(
  path: string,
  hashContents = true,
): Promise<{ bad: string | null; entries: PythonEntry[] }> {
  await requireCommand('python3', 'install Python 3');
  const { stdout } = await run('python3', ['-c', PYTHON_INSPECT, path, hashContents ? '1' : '0'], {
    maxBuffer: 512 * 1024 * 1024,
  });
  return JSON.parse(stdout) as { bad: string | null; entries: PythonEntry[] };
}

/** Runs Info-ZIP's `unzip -t` (decompress and check every CRC); returns exit code and output. */
export async function testWithUnzip(path: string): Promise<{ code: number; output: string }> {
  await requireCommand('unzip', 'apt-get install -y unzip');
  try {
    const { stdout, stderr } = await run('unzip', ['-t', path], { maxBuffer: 512 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}
