import { randomBytes, createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';
import {
  centralDirectoryHeader,
  createZipStream,
  dataDescriptor,
  dosDateTime,
  endOfCentralDirectory,
  extendedTimestampExtraField,
  localFileHeader,
  ZipStream,
  type ZipEntryChunk,
  type ZipOptions,
} from '../sinks/zip.js';
import { inspectWithPython, readWithYauzl, testWithUnzip, zipToBuffer } from './support/zip-readers.js';

/** Joins hex fragments, so expected layouts can be written field by field with comments. */
function hex(...fields: string[]): string {
  return fields.join('').replace(/\s+/g, '');
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'audit-export-zip-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

async function saved(archive: Buffer, name: string): Promise<string> {
  const path = join(workDir, name);
  await writeFile(path, archive);
  return path;
}

describe('zip byte layout', () => {
  // 2024-05-17 13:45:31 local time: DOS date 0x58B1 (44 << 9 | 5 << 5 | 17), time 0x6DAF (13 << 11 | 45 << 5 | 15).
  const modified = { date: 0x58b1, time: 0x6daf };
  const name = Buffer.from('a.csv');
  // Extended timestamp of 2024-05-17T13:45:31Z = 1715953531 s = 0x66475F7B.
  const timestamp = hex('5554 0500 01 7b5f4766');
  const extra = Buffer.from(timestamp, 'hex');

  it('converts local time to DOS date and time, dropping the odd second', () => {
    expect(dosDateTime(new Date(2024, 4, 17, 13, 45, 31))).toEqual({ date: 0x58b1, time: 0x6daf });
    expect(dosDateTime(new Date(1980, 0, 1, 0, 0, 0))).toEqual({ date: 0x0021, time: 0x0000 });
    expect(dosDateTime(new Date(2107, 11, 31, 23, 59, 59))).toEqual({ date: 0xff9f, time: 0xbf7d });
  });

  it('writes the extended timestamp as whole UTC seconds', () => {
    const field = extendedTimestampExtraField(new Date(Date.UTC(2024, 4, 17, 13, 45, 31, 999)));
    expect(field.toString('hex')).toBe(timestamp);
  });

  it('writes a local file header with data descriptor and UTF-8 flags and zero sizes', () => {
    expect(localFileHeader({ name, modified, extra }).toString('hex')).toBe(
      hex(
        '504b0304', // signature
        '1400', // version needed 2.0
        '0808', // flags: bit 3 data descriptor, bit 11 UTF-8
        '0800', // deflate
        'af6d b158', // time, date
        '00000000 00000000 00000000', // CRC-32 and sizes come in the data descriptor
        '0500 0900', // name and extra lengths
        '612e637376', // a.csv
        timestamp,
      ),
    );
  });

  it('announces version 4.5 in the local header when zip64 is forced, still without a zip64 extra', () => {
    expect(localFileHeader({ name, modified, extra: Buffer.alloc(0) }, true).toString('hex')).toBe(
      hex('504b0304 2d00 0808 0800 af6d b158 00000000 00000000 00000000 0500 0000 612e637376'),
    );
  });

  it('encodes UTF-8 names as given', () => {
    const utf8 = Buffer.from('Ü/日.csv', 'utf8');
    const header = localFileHeader({ name: utf8, modified, extra: Buffer.alloc(0) });
    expect(header.readUInt16LE(26)).toBe(10); // Ü 2 bytes, / 1, 日 3, .csv 4
    expect(header.subarray(30).toString('hex')).toBe('c39c2fe697a52e637376');
  });

  it('writes 32-bit data descriptors while both sizes fit', () => {
    expect(dataDescriptor({ crc32: 0xdeadbeef, compressedBytes: 0x1234, uncompressedBytes: 0x56789 }).toString('hex')).toBe(
      hex('504b0708 efbeadde 34120000 89670500'),
    );
    expect(
      dataDescriptor({ crc32: 1, compressedBytes: 0xfffffffe, uncompressedBytes: 0xfffffffe }).toString('hex'),
    ).toBe(hex('504b0708 01000000 feffffff feffffff'));
  });

  it('writes 64-bit data descriptors from 0xFFFFFFFF bytes on, or when forced', () => {
    expect(dataDescriptor({ crc32: 0xdeadbeef, compressedBytes: 0x10, uncompressedBytes: 0xffffffff }).toString('hex')).toBe(
      hex('504b0708 efbeadde 1000000000000000 ffffffff00000000'),
    );
    expect(
      dataDescriptor({ crc32: 0xdeadbeef, compressedBytes: 0x1_4000_0000, uncompressedBytes: 0x20 }).toString('hex'),
    ).toBe(hex('504b0708 efbeadde 0000004001000000 2000000000000000'));
    expect(dataDescriptor({ crc32: 0, compressedBytes: 2, uncompressedBytes: 0 }, true).toString('hex')).toBe(
      hex('504b0708 00000000 0200000000000000 0000000000000000'),
    );
  });

  const entry = {
    name,
    modified,
    extra,
    crc32: 0xdeadbeef,
    compressedBytes: 0x1234,
    uncompressedBytes: 0x56789,
    localHeaderOffset: 0x9abc,
  };

  it('writes a classic central directory header while sizes and offset fit', () => {
    expect(centralDirectoryHeader(entry).toString('hex')).toBe(
      hex(
        '504b0102', // signature
        '2d03', // made by: Unix, 4.5
        '1400', // version needed 2.0
        '0808 0800 af6d b158', // flags, deflate, time, date
        'efbeadde 34120000 89670500', // CRC-32, compressed, uncompressed
        '0500 0900 0000', // name, extra and comment lengths
        '0000 0000', // disk number start, internal attributes
        '0000a481', // external attributes: regular file rw-r--r--
        'bc9a0000', // local header offset
        '612e637376',
        timestamp,
      ),
    );
    expect(centralDirectoryHeader({ ...entry, localHeaderOffset: 0xfffffffe }).readUInt32LE(42)).toBe(0xfffffffe);
  });

  it('moves sizes and offset into a zip64 extra field once one of them reaches 0xFFFFFFFF', () => {
    expect(centralDirectoryHeader({ ...entry, localHeaderOffset: 0xffffffff }).toString('hex')).toBe(
      hex(
        '504b0102 2d03',
        '2d00', // version needed 4.5
        '0808 0800 af6d b158 efbeadde',
        'ffffffff ffffffff', // sizes in the zip64 extra
        '0500 2500 0000 0000 0000 0000a481', // extra length 28 + 9
        'ffffffff', // offset in the zip64 extra
        '612e637376',
        '0100 1800', // zip64 extended information, 24 bytes
        '8967050000000000', // uncompressed
        '3412000000000000', // compressed
        'ffffffff00000000', // local header offset
        timestamp,
      ),
    );
    const large = centralDirectoryHeader({ ...entry, uncompressedBytes: 0x1_0000_0005 });
    expect(large.readUInt16LE(6)).toBe(45);
    expect(large.subarray(46 + 5, 46 + 5 + 28).toString('hex')).toBe(
      hex('0100 1800 0500000001000000 3412000000000000 bc9a000000000000'),
    );
    const forced = centralDirectoryHeader(entry, true);
    expect(forced.subarray(46 + 5, 46 + 5 + 28).toString('hex')).toBe(
      hex('0100 1800 8967050000000000 3412000000000000 bc9a000000000000'),
    );
  });

  it('writes a classic end of central directory record while everything fits', () => {
    expect(endOfCentralDirectory({ entryCount: 3, directoryBytes: 0xcd, directoryOffset: 0x461 }).toString('hex')).toBe(
      hex('504b0506 0000 0000 0300 0300 cd000000 61040000 0000'),
    );
    const edge = endOfCentralDirectory({ entryCount: 0xfffe, directoryBytes: 0xfffffffe, directoryOffset: 0xfffffffe });
    expect(edge.toString('hex')).toBe(hex('504b0506 0000 0000 feff feff feffffff feffffff 0000'));
  });

  it('adds the zip64 end record and locator at 0xFFFF entries, with the classic fields at their maximum', () => {
    expect(
      endOfCentralDirectory({ entryCount: 0xffff, directoryBytes: 0x5000, directoryOffset: 0x1_2345_6789 }).toString('hex'),
    ).toBe(
      hex(
        '504b0606', // zip64 end of central directory record
        '2c00000000000000', // 44 bytes follow
        '2d03 2d00', // made by Unix 4.5, needed 4.5
        '00000000 00000000', // disks
        'ffff000000000000 ffff000000000000', // entries on this disk, in total
        '0050000000000000', // directory size
        '8967452301000000', // directory offset
        '504b0607 00000000', // locator, disk of the zip64 record
        '89b7452301000000', // zip64 record offset = directory offset + size
        '01000000', // one disk
        '504b0506 0000 0000 ffff ffff ffffffff ffffffff 0000',
      ),
    );
  });

  it.each([
    ['the directory size', { entryCount: 1, directoryBytes: 0xffffffff, directoryOffset: 0 }],
    ['the directory offset', { entryCount: 1, directoryBytes: 0x40, directoryOffset: 0xffffffff }],
  ])('adds the zip64 end records when %s reaches 0xFFFFFFFF', (_what, location) => {
    const records = endOfCentralDirectory(location);
    expect(records.length).toBe(56 + 20 + 22);
    expect(records.readUInt32LE(0)).toBe(0x06064b50);
    expect(records.readBigUInt64LE(40)).toBe(BigInt(location.directoryBytes));
    expect(records.readBigUInt64LE(48)).toBe(BigInt(location.directoryOffset));
  });

  it('writes zip64 end records for an empty archive when forced', () => {
    expect(endOfCentralDirectory({ entryCount: 0, directoryBytes: 0, directoryOffset: 0 }, true).toString('hex')).toBe(
      hex(
        '504b0606 2c00000000000000 2d03 2d00 00000000 00000000',
        '0000000000000000 0000000000000000 0000000000000000 0000000000000000',
        '504b0607 00000000 0000000000000000 01000000',
        '504b0506 0000 0000 ffff ffff ffffffff ffffffff 0000',
      ),
    );
  });
});

describe('createZipStream options', () => {
  it.each<[string, unknown]>([
    ['Expected `level` to be an integer from 0 to 9, got 11', { level: 11 }],
    ['Expected `level` to be an integer from 0 to 9, got -1', { level: -1 }],
    ['Expected `level` to be an integer from 0 to 9, got 1.5', { level: 1.5 }],
    ['Expected `level` to be an integer from 0 to 9, got "6"', { level: '6' }],
    ['Expected `forceZip64` to be a boolean, got "yes"', { forceZip64: 'yes' }],
    ['Expected `options` to be an object, got null', null],
    [
      'Expected `modifiedAt` to be a valid Date from 1980-01-01 (local time) to 2106-02-07T06:28:15Z, ' +
        'the range zip timestamps can hold, got Invalid Date',
      { modifiedAt: new Date(Number.NaN) },
    ],
    [
      'Expected `modifiedAt` to be a valid Date from 1980-01-01 (local time) to 2106-02-07T06:28:15Z, ' +
        'the range zip timestamps can hold, got "2024-05-17"',
      { modifiedAt: '2024-05-17' },
    ],
  ])('throws at creation: %s', (message, options) => {
    expect(() => createZipStream(options as ZipOptions)).toThrow(new TypeError(message));
    expect(() => new ZipStream(options as ZipOptions)).toThrow(TypeError);
  });

  it('rejects dates outside what zip timestamps hold', () => {
    expect(() => createZipStream({ modifiedAt: new Date(1979, 11, 31, 23, 59, 59) })).toThrow(
      /^Expected `modifiedAt` to be a valid Date/,
    );
    expect(() => createZipStream({ modifiedAt: new Date(Date.UTC(2106, 1, 7, 6, 28, 16)) })).toThrow(
      'got 2106-02-07T06:28:16.000Z',
    );
    expect(() => createZipStream({ modifiedAt: new Date(Date.UTC(2106, 1, 7, 6, 28, 15, 999)) })).not.toThrow();
    expect(() => createZipStream({ modifiedAt: new Date(1980, 0, 1) })).not.toThrow();
  });
});

/** A CSV-ish line for entry contents, different for every index. */
const csvLine = (i: number): Buffer => Buffer.from(`${i},"name ${i}, ä ö ü",${'x'.repeat(i % 97)}\r\n`);

/** Splits `data` into chunks of `size` bytes (views, no copies). */
function split(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size));
  return chunks;
}

interface Expected {
  readonly name: string;
  readonly chunks: Buffer[];
}

function chunksOf(entries: Expected[]): ZipEntryChunk[] {
  return entries.flatMap(({ name, chunks }) => chunks.map((data) => ({ entry: name, data })));
}

const contentOf = (entry: Expected): Buffer => Buffer.concat(entry.chunks);

describe('ZipStream archives', () => {
  const modifiedAt = new Date(2024, 4, 17, 13, 45, 31, 250);
  const large = Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.from('id,text\n'.repeat(400_000))]);
  const entries: Expected[] = [
    { name: 'chats.csv', chunks: Array.from({ length: 3000 }, (_, i) => csvLine(i)) },
    { name: 'empty.csv', chunks: [Buffer.alloc(0)] },
    {
      name: 'Übersicht/聊天记录 📨.csv',
      chunks: [Buffer.from('ä,ö,ü\n'), Buffer.alloc(0), Buffer.from('日本語,😀\n')],
    },
    { name: 'large.bin', chunks: [large] },
    { name: 'messages.csv', chunks: split(Buffer.concat(Array.from({ length: 40_000 }, (_, i) => csvLine(i))), 64 * 1024) },
  ];

  describe.each([false, true])('with forceZip64 %s', (forceZip64) => {
    let zip: ZipStream;
    let archive: Buffer;
    let path: string;
    beforeAll(async () => {
      zip = createZipStream({ modifiedAt, forceZip64 });
      archive = await zipToBuffer(zip, chunksOf(entries));
      path = await saved(archive, `round-trip-${forceZip64}.zip`);
    });

    it('round-trips every entry byte for byte through yauzl, in order', async () => {
      const read = await readWithYauzl(archive);
      expect(read.map((r) => r.entry.fileName)).toEqual(entries.map((e) => e.name));
      for (const [index, expected] of entries.entries()) {
        expect(read[index]!.data.equals(contentOf(expected)), expected.name).toBe(true);
      }
    });

    it('reports each entry and the archive size as the readers see them', async () => {
      const read = await readWithYauzl(archive, () => false);
      expect(zip.bytesWritten).toBe(archive.length);
      expect(zip.entries).toEqual(
        read.map(({ entry }) => ({
          name: entry.fileName,
          uncompressedBytes: entry.uncompressedSize,
          compressedBytes: entry.compressedSize,
          crc32: entry.crc32,
        })),
      );
      expect(zip.entries.map((e) => e.uncompressedBytes)).toEqual(entries.map((e) => contentOf(e).length));
      // Deflate did compress the text and could not compress the random bytes.
      expect(zip.entries[0]!.compressedBytes).toBeLessThan(zip.entries[0]!.uncompressedBytes / 3);
      expect(zip.entries[3]!.compressedBytes).toBeGreaterThan(3 * 1024 * 1024);
    });

    it('writes headers the way Go does: flags, method, versions, sizes in a data descriptor', async () => {
      const read = await readWithYauzl(archive, () => false);
      for (const [index, { entry, local }] of read.entries()) {
        expect(entry.generalPurposeBitFlag).toBe(0x0808);
        expect(entry.compressionMethod).toBe(8);
        expect(entry.versionNeededToExtract).toBe(forceZip64 ? 45 : 20);
        expect(local.generalPurposeBitFlag).toBe(0x0808);
        expect(local.versionNeededToExtract).toBe(forceZip64 ? 45 : 20);
        expect([local.crc32, local.compressedSize, local.uncompressedSize]).toEqual([0, 0, 0]);
        expect(local.extraField.includes(Buffer.from([0x01, 0x00]))).toBe(false);
        expect(entry.extraFields.some((field) => field.id === 0x0001)).toBe(forceZip64);
        expect(entry.getLastModDate({ forceDosFormat: true })).toEqual(new Date(2024, 4, 17, 13, 45, 30));
        expect(entry.getLastModDate()).toEqual(new Date(2024, 4, 17, 13, 45, 31));

        // The data descriptor follows the data and the next record follows the descriptor.
        const at = local.fileDataStart + entry.compressedSize;
        expect(archive.readUInt32LE(at)).toBe(0x08074b50);
        expect(archive.readUInt32LE(at + 4)).toBe(entry.crc32);
        const sizes = forceZip64
          ? [Number(archive.readBigUInt64LE(at + 8)), Number(archive.readBigUInt64LE(at + 16))]
          : [archive.readUInt32LE(at + 8), archive.readUInt32LE(at + 12)];
        expect(sizes).toEqual([entry.compressedSize, entry.uncompressedSize]);
        const next = at + (forceZip64 ? 24 : 16);
        const following = read[index + 1];
        if (following === undefined) expect(archive.readUInt32LE(next)).toBe(0x02014b50);
        else expect(following.entry.relativeOffsetOfLocalHeader).toBe(next);
      }
    });

    it('ends with zip64 end records only when forced', () => {
      const end = archive.length - 22;
      expect(archive.readUInt32LE(end)).toBe(0x06054b50);
      expect(archive.readUInt16LE(end + 10)).toBe(forceZip64 ? 0xffff : entries.length);
      expect(archive.readUInt32LE(end - 20) === 0x07064b50).toBe(forceZip64);
      if (forceZip64) {
        const record = Number(archive.readBigUInt64LE(end - 20 + 8));
        expect(archive.readUInt32LE(record)).toBe(0x06064b50);
        expect(Number(archive.readBigUInt64LE(record + 32))).toBe(entries.length);
      }
    });

    it("passes Python's zipfile: testzip, contents, names, versions, attributes, times", async () => {
      const python = await inspectWithPython(path);
      expect(python.bad).toBeNull();
      expect(
        python.entries.map((e) => ({ name: e.name, size: e.size, crc: e.crc, compressed: e.compressed, sha256: e.sha256 })),
      ).toEqual(
        entries.map((e, i) => ({
          name: e.name,
          size: contentOf(e).length,
          crc: zip.entries[i]!.crc32,
          compressed: zip.entries[i]!.compressedBytes,
          sha256: sha256(contentOf(e)),
        })),
      );
      for (const entry of python.entries) {
        expect(entry.flags).toBe(0x0808);
        expect(entry.method).toBe(8);
        expect(entry.extractVersion).toBe(forceZip64 ? 45 : 20);
        expect(entry.createSystem).toBe(3);
        expect(entry.externalAttr >>> 16).toBe(0o100644);
        expect(entry.dateTime).toEqual([2024, 5, 17, 13, 45, 30]);
        expect(entry.extra.startsWith('01001800')).toBe(forceZip64);
      }
    });

    it('passes unzip -t', async () => {
      const { code, output } = await testWithUnzip(path);
      expect(output).toContain('No errors detected in compressed data');
      expect(code).toBe(0);
    });
  });

  it.each([false, true])('writes a valid empty archive when no entry was written (forceZip64 %s)', async (forceZip64) => {
    const zip = createZipStream({ forceZip64 });
    const archive = await zipToBuffer(zip, []);
    expect(zip.entries).toEqual([]);
    expect(zip.bytesWritten).toBe(archive.length);
    expect(await readWithYauzl(archive)).toEqual([]);
    const path = await saved(archive, `empty-${forceZip64}.zip`);
    expect(await inspectWithPython(path)).toEqual({ bad: null, entries: [] });
    // Info-ZIP treats an empty archive as a warning (exit code 1), not an error.
    const unzip = await testWithUnzip(path);
    expect(unzip.output).toContain('zipfile is empty');
    expect(unzip.code).toBe(1);
  });

  it('writes an archive with only an empty entry at every level', async () => {
    for (const level of [0, 1, 9]) {
      const zip = createZipStream({ level });
      const archive = await zipToBuffer(zip, [{ entry: 'header-only.csv', data: Buffer.alloc(0) }]);
      const read = await readWithYauzl(archive);
      expect(read.map((r) => [r.entry.fileName, r.data.length])).toEqual([['header-only.csv', 0]]);
      expect(zip.entries[0]).toMatchObject({ name: 'header-only.csv', uncompressedBytes: 0, crc32: 0 });
      const python = await inspectWithPython(await saved(archive, `only-empty-${level}.zip`));
      expect(python.bad).toBeNull();
    }
  });

  it('stores incompressible data at level 0 and still deflate-frames it', async () => {
    const data = randomBytes(200_000);
    const zip = createZipStream({ level: 0 });
    const archive = await zipToBuffer(zip, split(data, 10_000).map((chunk) => ({ entry: 'raw.bin', data: chunk })));
    const [read] = await readWithYauzl(archive);
    expect(read!.entry.compressionMethod).toBe(8);
    expect(read!.data.equals(data)).toBe(true);
    // Stored deflate blocks cost 5 bytes per block of up to 64 KiB.
    expect(read!.entry.compressedSize - data.length).toBeLessThan(100);
  });

  it('switches to zip64 end records at 65535 entries without being forced', async () => {
    const count = 0xffff;
    const zip = createZipStream({ level: 1 });
    async function* many(): AsyncGenerator<ZipEntryChunk> {
      for (let i = 0; i < count; i++) yield { entry: `rows/${i}.csv`, data: csvLine(i) };
    }
    const archive = await zipToBuffer(zip, many());
    const end = archive.length - 22;
    expect(archive.readUInt16LE(end + 10)).toBe(0xffff);
    expect(archive.readUInt32LE(end - 20)).toBe(0x07064b50);
    const path = await saved(archive, 'many.zip');
    const python = await inspectWithPython(path, false);
    expect(python.bad).toBeNull();
    expect(python.entries.length).toBe(count);
    expect(python.entries[count - 1]).toMatchObject({ name: `rows/${count - 1}.csv`, extractVersion: 20 });
    expect(python.entries.some((e) => e.extra.startsWith('0100'))).toBe(false);
    const unzip = await testWithUnzip(path);
    expect(unzip.code).toBe(0);
    const read = await readWithYauzl(archive, (entry) => entry.fileName === 'rows/65534.csv');
    expect(read.length).toBe(count);
    expect(read[count - 1]!.data.equals(csvLine(count - 1))).toBe(true);
  }, 120_000);
});

describe('ZipStream errors', () => {
  async function failure(chunks: unknown[]): Promise<Error> {
    const zip = createZipStream();
    const archive = zipToBuffer(zip, chunks as ZipEntryChunk[]);
    await expect(archive).rejects.toThrow();
    expect(zip.destroyed).toBe(true);
    return await archive.then(
      () => new Error('unreachable'),
      (error: unknown) => error as Error,
    );
  }

  it('rejects an empty entry name', async () => {
    const error = await failure([{ entry: '', data: Buffer.from('x') }]);
    expect(error).toEqual(new TypeError('Expected chunk `entry` to be a non-empty string, got ""'));
  });

  it('rejects a name that repeats an entry closed earlier', async () => {
    const error = await failure([
      { entry: 'a.csv', data: Buffer.from('1') },
      { entry: 'a.csv', data: Buffer.from('2') },
      { entry: 'b.csv', data: Buffer.from('3') },
      { entry: 'a.csv', data: Buffer.from('4') },
    ]);
    expect(error.message).toBe(
      'Zip entry "a.csv" was already written and closed: entry names must be unique and an entry\'s chunks consecutive',
    );
  });

  it('rejects a repeated empty entry too', async () => {
    const error = await failure([
      { entry: 'a.csv', data: Buffer.alloc(0) },
      { entry: 'b.csv', data: Buffer.alloc(0) },
      { entry: 'a.csv', data: Buffer.alloc(0) },
    ]);
    expect(error.message).toMatch(/^Zip entry "a.csv" was already written and closed/);
  });

  it('rejects names that UTF-8 cannot carry faithfully or that do not fit the header', async () => {
    expect((await failure([{ entry: 'bad\ud800.csv', data: Buffer.alloc(0) }])).message).toBe(
      'Expected zip entry name to be well-formed Unicode, got "bad\\ud800.csv"',
    );
    const long = 'ä'.repeat(40_000);
    expect((await failure([{ entry: long, data: Buffer.alloc(0) }])).message).toBe(
      `Expected zip entry name to be at most 65535 bytes in UTF-8, got 80000 bytes for "${'ä'.repeat(40)}"...`,
    );
  });

  it('rejects malformed chunks', async () => {
    expect((await failure(['text'])).message).toBe('Expected a zip chunk `{ entry, data }`, got "text"');
    expect((await failure([{ entry: 'a.csv', data: 'text' }])).message).toBe(
      'Expected chunk `data` of entry "a.csv" to be a Buffer, got "text"',
    );
    expect((await failure([{ entry: 7, data: Buffer.alloc(1) }])).message).toBe(
      'Expected chunk `entry` to be a non-empty string, got 7',
    );
  });
});

describe('ZipStream backpressure', () => {
  /**
   * Writes chunks with no reader on the readable side, waiting for 'drain' whenever write() says so,
   * until no 'drain' comes: then the stream has stopped accepting. Returns the bytes accepted.
   */
  async function writeUntilStuck(zip: ZipStream, next: () => Buffer): Promise<number> {
    let accepted = 0;
    while (accepted < 256 * 1024 * 1024) {
      const data = next();
      accepted += data.length;
      if (!zip.write({ entry: 'data.bin', data })) {
        const drained = await Promise.race([once(zip, 'drain').then(() => true), delay(750).then(() => false)]);
        if (!drained) return accepted;
      }
    }
    throw new Error('The stream accepted 256 MiB without a reader: no backpressure');
  }

  const pool = randomBytes(4 * 1024 * 1024);
  let position = 0;
  /** Distinct 64 KiB chunks of random bytes, which deflate cannot shrink. */
  const randomChunk = (): Buffer => {
    position = (position + 64 * 1024 + 17) % (pool.length - 64 * 1024);
    return pool.subarray(position, position + 64 * 1024);
  };
  let line = 0;
  /** 64 KiB of CSV-like text, which deflate shrinks about fivefold. */
  const textChunk = (): Buffer => {
    const lines: Buffer[] = [];
    let bytes = 0;
    while (bytes < 64 * 1024) {
      const next = csvLine(line++);
      lines.push(next);
      bytes += next.length;
    }
    return Buffer.concat(lines);
  };

  // What the writer may take in without a reader: 4 queued chunks, the segment being filled and the
  // two deflating or waiting (1 MiB each), and one piece of output pushed past the readable buffer.
  const acceptedBound = 4 * 64 * 1024 + 3 * 1024 * 1024 + 2 * 64 * 1024;
  it.each([
    ['incompressible', randomChunk, acceptedBound],
    ['CSV-like', textChunk, acceptedBound],
  ])('stops accepting %s data when nobody reads, then delivers it all', async (_kind, next, bound) => {
    const zip = createZipStream({ level: 6 });
    const written: Buffer[] = [];
    const accepted = await writeUntilStuck(zip, () => {
      const data = next();
      written.push(data);
      return data;
    });
    expect(accepted).toBeLessThanOrEqual(bound);
    expect(zip.writableNeedDrain).toBe(true);
    // Held on both sides: a few queued chunks and about two buffers of output, not the data accepted.
    expect(zip.writableLength).toBeLessThanOrEqual(4);
    expect(zip.readableLength).toBeLessThanOrEqual(256 * 1024);

    const parts: Buffer[] = [];
    const reading = pipeline(
      zip,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          parts.push(chunk);
          callback();
        },
      }),
    );
    await once(zip, 'drain');
    for (let i = 0; i < 32; i++) {
      const data = next();
      written.push(data);
      if (!zip.write({ entry: 'data.bin', data })) await once(zip, 'drain');
    }
    zip.end();
    await reading;
    const [read] = await readWithYauzl(Buffer.concat(parts));
    expect(read!.data.equals(Buffer.concat(written))).toBe(true);
  });
});

// The writer deflates each entry in 1 MiB segments, two at a time on the thread pool, each primed
// with the previous segment's last 32 KiB: these check the seams between segments.
describe('ZipStream segments', () => {
  const segment = 1024 * 1024;
  /** CSV-like text whose lines repeat 300 KiB apart, so matches cross segment seams. */
  const text = (bytes: number): Buffer => {
    const lines: Buffer[] = [];
    let total = 0;
    for (let i = 0; total < bytes; i++) {
      const line = csvLine(i % 4000);
      lines.push(line);
      total += line.length;
    }
    return Buffer.concat(lines).subarray(0, bytes);
  };

  it('writes entries that end just before, at and just after segment seams, read back equal by three readers', async () => {
    const sizes = [segment - 1, segment, segment + 1, 2 * segment, 3 * segment + 12_345, 1];
    const contents = sizes.map((size, i) => (i % 2 === 0 ? text(size) : randomBytes(size)));
    // Chunk sizes that do not divide a segment, and one chunk larger than several segments.
    const chunks: ZipEntryChunk[] = contents.flatMap((data, i) =>
      (i === 4 ? [data] : split(data, 7_001 + i * 13_337)).map((chunk) => ({ entry: `part-${i}.bin`, data: chunk })),
    );
    const zip = createZipStream({ level: 6, modifiedAt: new Date(2024, 0, 1) });
    const archive = await zipToBuffer(zip, chunks);
    const read = await readWithYauzl(archive);
    expect(read.map((entry) => entry.entry.fileName)).toEqual(sizes.map((_, i) => `part-${i}.bin`));
    read.forEach((entry, i) => expect(entry.data.equals(contents[i]!)).toBe(true));
    const path = await saved(archive, 'segments.zip');
    const python = await inspectWithPython(path);
    expect(python.bad).toBeNull();
    expect(python.entries.map((entry) => entry.sha256)).toEqual(contents.map(sha256));
    const unzip = await testWithUnzip(path);
    expect(unzip.code).toBe(0);
  });

  it('compresses across seams about as well as one deflate stream, thanks to the primed window', async () => {
    const data = text(5 * segment + 777);
    const zip = createZipStream({ level: 6 });
    const archive = await zipToBuffer(zip, split(data, 256 * 1024).map((chunk) => ({ entry: 'text.csv', data: chunk })));
    const [read] = await readWithYauzl(archive);
    expect(read!.data.equals(data)).toBe(true);
    const oneStream = deflateRawSync(data, { level: 6 }).length;
    const segmented = zip.entries[0]!.compressedBytes;
    expect(segmented).toBe(read!.entry.compressedSize);
    // Each seam costs a 5-byte sync marker and, without the dictionary, the matches into the
    // previous segment: the text's 300 KiB repeat would then cost about 1.3 KiB per seam.
    expect(segmented - oneStream).toBeLessThan(5 * 64);
  });

  it('takes in a chunk larger than the segments in flight, calls back once it is copied, and releases it once', async () => {
    const data = text(6 * segment);
    const zip = createZipStream({ level: 1 });
    let releases = 0;
    const parts: Buffer[] = [];
    zip.on('data', (part: Buffer) => parts.push(part));
    const written = new Promise<void>((resolve, reject) =>
      zip.write({ entry: 'big.csv', data, release: () => (releases += 1) }, (error) => (error ? reject(error) : resolve())),
    );
    await written;
    expect(releases).toBe(1);
    zip.end();
    await once(zip, 'end');
    const [read] = await readWithYauzl(Buffer.concat(parts));
    expect(read!.data.equals(data)).toBe(true);
  });
});

// Opt-in, as it needs 4.3 GB free in os.tmpdir() and a minute or two (about 75 s on two cores:
// 20 s writing, the rest reading it back with Python, unzip and yauzl):
//   ZIP64_LARGE=1 npx vitest run test/zip.test.ts -t 'over 4 GiB'
describe('zip64 for real: an archive over 4 GiB', () => {
  it.runIf(process.env.ZIP64_LARGE === '1')(
    'streams a 4 GiB + 32 MiB entry between two small ones; Python, unzip and yauzl read it all',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'audit-export-zip64-'));
      const path = join(dir, 'large.zip');
      try {
        const block = randomBytes(1024 * 1024 + 64 * 1024);
        const bigBytes = 4 * 1024 ** 3 + 32 * 1024 ** 2;
        const bigChunks = bigBytes / (1024 * 1024);
        const bigHash = createHash('sha256');
        const first = Buffer.from('id,name\n1,first\n');
        const last = Buffer.from('id,name\n2,after the 4 GiB\n');
        async function* source(): AsyncGenerator<ZipEntryChunk> {
          yield { entry: 'before.csv', data: first };
          for (let i = 0; i < bigChunks; i++) {
            // Views at varying offsets of one random block: every MiB differs, nothing is copied.
            const offset = (i * 4099) % (64 * 1024);
            const data = block.subarray(offset, offset + 1024 * 1024);
            bigHash.update(data);
            yield { entry: 'big.bin', data };
          }
          yield { entry: 'after.csv', data: last };
        }
        // Level 0 still writes deflate framing (stored blocks) and is eight times faster than level 1 here.
        const zip = createZipStream({ level: 0 });
        const started = performance.now();
        await pipeline(Readable.from(source()), zip, createWriteStream(path));
        const seconds = (performance.now() - started) / 1000;
        console.log(`zip64: wrote ${(zip.bytesWritten / 1e9).toFixed(2)} GB in ${seconds.toFixed(1)} s`);

        expect((await stat(path)).size).toBe(zip.bytesWritten);
        expect(zip.entries.map((e) => [e.name, e.uncompressedBytes])).toEqual([
          ['before.csv', first.length],
          ['big.bin', bigBytes],
          ['after.csv', last.length],
        ]);
        // Incompressible, so the compressed size needs zip64 too.
        expect(zip.entries[1]!.compressedBytes).toBeGreaterThan(0xffffffff);

        const python = await inspectWithPython(path, false);
        expect(python.bad).toBeNull();
        expect(python.entries.map((e) => [e.name, e.size, e.crc, e.compressed])).toEqual(
          zip.entries.map((e) => [e.name, e.uncompressedBytes, e.crc32, e.compressedBytes]),
        );
        // before.csv needs no zip64; big.bin needs it for its sizes, after.csv for its offset.
        expect(python.entries.map((e) => [e.extractVersion, e.extra.startsWith('0100')])).toEqual([
          [20, false],
          [45, true],
          [45, true],
        ]);
        expect(python.entries[2]!.headerOffset).toBeGreaterThan(0xffffffff);

        const unzip = await testWithUnzip(path);
        expect(unzip.output).toContain('No errors detected in compressed data');
        expect(unzip.code).toBe(0);

        const read = await readWithYauzl(path, (entry) => entry.fileName !== 'big.bin');
        expect(read.map((r) => r.entry.uncompressedSize)).toEqual([first.length, bigBytes, last.length]);
        expect(read[0]!.data.equals(first)).toBe(true);
        expect(read[2]!.data.equals(last)).toBe(true);
        // Data descriptors: 64-bit sizes only for the entry whose sizes need them.
        const file = await open(path);
        try {
          const descriptors: number[][] = [];
          for (const { entry, local } of read) {
            const bytes = Buffer.alloc(24);
            await file.read(bytes, 0, 24, local.fileDataStart + entry.compressedSize);
            expect(bytes.readUInt32LE(0)).toBe(0x08074b50);
            descriptors.push(
              entry.fileName === 'big.bin'
                ? [Number(bytes.readBigUInt64LE(8)), Number(bytes.readBigUInt64LE(16))]
                : [bytes.readUInt32LE(8), bytes.readUInt32LE(12)],
            );
          }
          expect(descriptors).toEqual(read.map(({ entry }) => [entry.compressedSize, entry.uncompressedSize]));
        } finally {
          await file.close();
        }
        // The big entry's bytes, hashed while decompressing with yauzl (independent of the CRC checks above).
        const zipfile = await yauzl.openPromise(path, { lazyEntries: true });
        try {
          for await (const entry of zipfile.eachEntry()) {
            if (entry.fileName !== 'big.bin') continue;
            const readHash = createHash('sha256');
            for await (const chunk of await zipfile.openReadStreamPromise(entry)) readHash.update(chunk as Buffer);
            expect(readHash.digest('hex')).toBe(bigHash.digest('hex'));
          }
        } finally {
          zipfile.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    60 * 60_000,
  );
});
