import { Buffer } from 'node:buffer';
import { Transform, type TransformCallback, type TransformOptions } from 'node:stream';
import { crc32, createDeflateRaw, type DeflateRaw, type ZlibOptions } from 'node:zlib';
import { describe } from '../config/env.js';

// The byte layout follows PKWARE's APPNOTE.TXT and the choices of Go's archive/zip writer, which
// the widest range of readers (Info-ZIP, Python, Windows Explorer, macOS, 7-Zip, Java) accept.

const LOCAL_FILE_HEADER_SIGNATURE = 0x04034b50;
const DATA_DESCRIPTOR_SIGNATURE = 0x08074b50;
const CENTRAL_DIRECTORY_HEADER_SIGNATURE = 0x02014b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY_SIGNATURE = 0x06064b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY_LOCATOR_SIGNATURE = 0x07064b50;
const END_OF_CENTRAL_DIRECTORY_SIGNATURE = 0x06054b50;

const LOCAL_FILE_HEADER_BYTES = 30;
const CENTRAL_DIRECTORY_HEADER_BYTES = 46;
const ZIP64_END_OF_CENTRAL_DIRECTORY_BYTES = 56;
const ZIP64_END_OF_CENTRAL_DIRECTORY_LOCATOR_BYTES = 20;
const END_OF_CENTRAL_DIRECTORY_BYTES = 22;

const UINT16_MAX = 0xffff;
const UINT32_MAX = 0xffffffff;

// Bit 3: CRC and sizes follow the data, because the header is written before the data is seen.
// Bit 11: names are UTF-8, so no reader guesses at code page 437.
const GENERAL_PURPOSE_FLAGS = 0x0008 | 0x0800;
const METHOD_DEFLATE = 8;
const VERSION_DEFLATE = 20;
const VERSION_ZIP64 = 45;
// Upper byte 3 (Unix) makes readers take the permissions below from the external attributes;
// lower byte: we write features up to APPNOTE 4.5 (zip64).
const VERSION_MADE_BY = (3 << 8) | VERSION_ZIP64;
// A regular file, rw-r--r--: what an extracted export should be, whatever the reader's umask.
const EXTERNAL_ATTRIBUTES = (0o100644 << 16) >>> 0;

const ZIP64_EXTRA_ID = 0x0001;
const ZIP64_EXTRA_BYTES = 4 + 3 * 8;
const EXTENDED_TIMESTAMP_EXTRA_ID = 0x5455;
const EXTENDED_TIMESTAMP_EXTRA_BYTES = 4 + 1 + 4;

/** Earliest instant a DOS date can hold, in local time (January 1980). */
const DOS_EPOCH_YEAR = 1980;

// Memory budget. While the reader of the archive keeps up, chunks pass straight through and only
// deflate's input buffer fills, which is what lets the caller produce the next chunk on the main
// thread while zlib compresses on the thread pool. When the reader stops, every buffer below fills
// once and then the writable side refuses more: with the CSV stage's 256 KiB chunks at most about
// 4 x 256 KiB (our queue) + 512 KiB + 256 KiB (deflate input) + 2 x 2 x 64 KiB (outputs) of memory.
/** Chunks queued on the writable side before write() returns false. */
const WRITABLE_HIGH_WATER_MARK_CHUNKS = 4;
/** Uncompressed bytes handed to deflate before its write() returns false: two of the CSV stage's 256 KiB chunks. */
const DEFLATE_INPUT_HIGH_WATER_MARK = 512 * 1024;
/** Size of deflate's output buffers: fewer thread-pool round trips than zlib's default of 16 KiB. */
const DEFLATE_OUTPUT_CHUNK_BYTES = 64 * 1024;
/** Compressed bytes deflate and this stream each buffer for a slow reader. */
const READABLE_HIGH_WATER_MARK = 64 * 1024;

/**
 * One piece of data for the entry `entry`. A chunk naming another entry than the previous chunk
 * closes the previous entry and opens the new one, so an entry's chunks must be consecutive.
 * Entry names must be unique within the archive: a name that repeats an earlier, closed entry is
 * an error. A chunk with empty `data` opens its entry, so an entry can be an empty file.
 */
export interface ZipEntryChunk {
  /** Path of the entry inside the archive, with `/` between folders; stored as UTF-8. */
  readonly entry: string;
  /**
   * The next bytes of the entry. The stream keeps a reference until deflate has read it: do not
   * write into the buffer again before {@link release} is called.
   */
  readonly data: Buffer;
  /**
   * Called once deflate has read {@link data}, so its buffer may be written again; at most once,
   * and never when the stream is destroyed first (then nothing may reuse the buffer).
   */
  readonly release?: () => void;
}

/** Options for {@link createZipStream}. */
export interface ZipOptions {
  /** Deflate level from 0 (stored blocks, fastest) to 9 (smallest); default 6, zlib's own default. */
  readonly level?: number;
  /** Modification time of every entry; default: when the stream is created. */
  readonly modifiedAt?: Date;
  /**
   * Writes zip64 records even when nothing needs them, so tests can check that readers accept
   * them without writing 4 GiB. Default false: zip64 records appear only where a size, an offset
   * or the entry count does not fit the classic fields.
   */
  readonly forceZip64?: boolean;
}

/** What the archive says about one finished entry. */
export interface ZipEntrySummary {
  /** Name of the entry, as given in {@link ZipEntryChunk.entry}. */
  readonly name: string;
  /** Bytes of data the entry was given. */
  readonly uncompressedBytes: number;
  /** Bytes of deflate output stored for the entry. */
  readonly compressedBytes: number;
  /** CRC-32 of the uncompressed data, as an unsigned integer. */
  readonly crc32: number;
}

/** A timestamp as the zip headers store it: DOS date and time, local time, two-second resolution. */
export interface DosDateTime {
  /** Bits 15-9 years since 1980, bits 8-5 month 1-12, bits 4-0 day 1-31. */
  readonly date: number;
  /** Bits 15-11 hours, bits 10-5 minutes, bits 4-0 seconds divided by two. */
  readonly time: number;
}

/** The parts of an entry's header that the local and the central directory header share. */
export interface EntryHeader {
  /** The entry name in UTF-8. */
  readonly name: Buffer;
  /** Modification time in DOS format. */
  readonly modified: DosDateTime;
  /** Extra fields written into both headers, such as {@link extendedTimestampExtraField}. */
  readonly extra: Buffer;
}

/** What is known about an entry only after its data: the content of the data descriptor. */
export interface EntryTrailer {
  /** CRC-32 of the uncompressed data. */
  readonly crc32: number;
  /** Bytes of compressed data between the local header and the data descriptor. */
  readonly compressedBytes: number;
  /** Bytes of uncompressed data. */
  readonly uncompressedBytes: number;
}

/** Everything the central directory records about an entry. */
export interface CentralDirectoryEntry extends EntryHeader, EntryTrailer {
  /** Offset of the entry's local file header from the start of the archive. */
  readonly localHeaderOffset: number;
}

/** Size and place of the central directory, which the end records point to. */
export interface CentralDirectoryLocation {
  /** Number of entries in the archive. */
  readonly entryCount: number;
  /** Bytes of all central directory headers together. */
  readonly directoryBytes: number;
  /** Offset of the first central directory header from the start of the archive. */
  readonly directoryOffset: number;
}

/**
 * Converts a time into DOS date and time fields. DOS timestamps have no time zone; like Info-ZIP
 * and Go we store local time, and {@link extendedTimestampExtraField} carries the exact instant.
 * Odd seconds round down, as the format cannot store them.
 */
export function dosDateTime(when: Date): DosDateTime {
  return {
    date: ((when.getFullYear() - DOS_EPOCH_YEAR) << 9) | ((when.getMonth() + 1) << 5) | when.getDate(),
    time: (when.getHours() << 11) | (when.getMinutes() << 5) | (when.getSeconds() >> 1),
  };
}

/**
 * The Info-ZIP "extended timestamp" extra field (0x5455) with the modification time as Unix
 * seconds. Readers that understand it (Info-ZIP, Go, 7-Zip) restore the exact instant instead of
 * reading the zone-less DOS time in their own zone. The field is the same in local and central headers.
 */
export function extendedTimestampExtraField(when: Date): Buffer {
  const field = Buffer.alloc(EXTENDED_TIMESTAMP_EXTRA_BYTES);
  field.writeUInt16LE(EXTENDED_TIMESTAMP_EXTRA_ID, 0);
  field.writeUInt16LE(EXTENDED_TIMESTAMP_EXTRA_BYTES - 4, 2);
  field.writeUInt8(1, 4); // only the modification time follows
  field.writeUInt32LE(Math.floor(when.getTime() / 1000), 5);
  return field;
}

/**
 * The local file header that precedes an entry's data. CRC and sizes are zero because flag bit 3
 * moves them into the data descriptor. Like Go, no zip64 extra field is written here even for
 * large entries: the size is unknown when the header is written, and readers take zip64 sizes from
 * the central directory. With `forceZip64` the entry is announced as needing version 4.5.
 */
export function localFileHeader(header: EntryHeader, forceZip64 = false): Buffer {
  const nameBytes = header.name.length;
  const out = Buffer.alloc(LOCAL_FILE_HEADER_BYTES + nameBytes + header.extra.length);
  out.writeUInt32LE(LOCAL_FILE_HEADER_SIGNATURE, 0);
  out.writeUInt16LE(forceZip64 ? VERSION_ZIP64 : VERSION_DEFLATE, 4);
  out.writeUInt16LE(GENERAL_PURPOSE_FLAGS, 6);
  out.writeUInt16LE(METHOD_DEFLATE, 8);
  out.writeUInt16LE(header.modified.time, 10);
  out.writeUInt16LE(header.modified.date, 12);
  // 14..25: CRC-32, compressed and uncompressed size stay zero (see the data descriptor).
  out.writeUInt16LE(nameBytes, 26);
  out.writeUInt16LE(header.extra.length, 28);
  header.name.copy(out, LOCAL_FILE_HEADER_BYTES);
  header.extra.copy(out, LOCAL_FILE_HEADER_BYTES + nameBytes);
  return out;
}

/** Whether an entry's sizes need the 64-bit data descriptor and the zip64 extra field. */
function sizesNeedZip64(trailer: EntryTrailer): boolean {
  return trailer.compressedBytes >= UINT32_MAX || trailer.uncompressedBytes >= UINT32_MAX;
}

/**
 * The data descriptor after an entry's data: signature, CRC-32, then compressed and uncompressed
 * size, as 32-bit fields when both fit and zip64 is not forced, else as 64-bit fields.
 */
export function dataDescriptor(trailer: EntryTrailer, forceZip64 = false): Buffer {
  const zip64 = forceZip64 || sizesNeedZip64(trailer);
  const out = Buffer.alloc(zip64 ? 24 : 16);
  out.writeUInt32LE(DATA_DESCRIPTOR_SIGNATURE, 0);
  out.writeUInt32LE(trailer.crc32, 4);
  if (zip64) {
    out.writeBigUInt64LE(BigInt(trailer.compressedBytes), 8);
    out.writeBigUInt64LE(BigInt(trailer.uncompressedBytes), 16);
  } else {
    out.writeUInt32LE(trailer.compressedBytes, 8);
    out.writeUInt32LE(trailer.uncompressedBytes, 12);
  }
  return out;
}

/**
 * An entry's central directory header. When a size or the local header offset does not fit in 32
 * bits, or zip64 is forced, all three 32-bit fields hold 0xFFFFFFFF and a zip64 extended
 * information extra field (0x0001, first among the extra fields) carries all three 64-bit values
 * in the order APPNOTE prescribes; the entry then needs version 4.5.
 */
export function centralDirectoryHeader(entry: CentralDirectoryEntry, forceZip64 = false): Buffer {
  const zip64 = forceZip64 || sizesNeedZip64(entry) || entry.localHeaderOffset >= UINT32_MAX;
  const nameBytes = entry.name.length;
  const extraBytes = (zip64 ? ZIP64_EXTRA_BYTES : 0) + entry.extra.length;
  const out = Buffer.alloc(CENTRAL_DIRECTORY_HEADER_BYTES + nameBytes + extraBytes);
  out.writeUInt32LE(CENTRAL_DIRECTORY_HEADER_SIGNATURE, 0);
  out.writeUInt16LE(VERSION_MADE_BY, 4);
  out.writeUInt16LE(zip64 ? VERSION_ZIP64 : VERSION_DEFLATE, 6);
  out.writeUInt16LE(GENERAL_PURPOSE_FLAGS, 8);
  out.writeUInt16LE(METHOD_DEFLATE, 10);
  out.writeUInt16LE(entry.modified.time, 12);
  out.writeUInt16LE(entry.modified.date, 14);
  out.writeUInt32LE(entry.crc32, 16);
  out.writeUInt32LE(zip64 ? UINT32_MAX : entry.compressedBytes, 20);
  out.writeUInt32LE(zip64 ? UINT32_MAX : entry.uncompressedBytes, 24);
  out.writeUInt16LE(nameBytes, 28);
  out.writeUInt16LE(extraBytes, 30);
  // 32..37: comment length, disk number start and internal attributes stay zero.
  out.writeUInt32LE(EXTERNAL_ATTRIBUTES, 38);
  out.writeUInt32LE(zip64 ? UINT32_MAX : entry.localHeaderOffset, 42);
  let at = CENTRAL_DIRECTORY_HEADER_BYTES + entry.name.copy(out, CENTRAL_DIRECTORY_HEADER_BYTES);
  if (zip64) {
    at = out.writeUInt16LE(ZIP64_EXTRA_ID, at);
    at = out.writeUInt16LE(ZIP64_EXTRA_BYTES - 4, at);
    at = out.writeBigUInt64LE(BigInt(entry.uncompressedBytes), at);
    at = out.writeBigUInt64LE(BigInt(entry.compressedBytes), at);
    at = out.writeBigUInt64LE(BigInt(entry.localHeaderOffset), at);
  }
  entry.extra.copy(out, at);
  return out;
}

/**
 * The records after the central directory: the end of central directory record, preceded by the
 * zip64 end of central directory record and its locator when the entry count does not fit in 16
 * bits, the directory's size or offset does not fit in 32 bits, or zip64 is forced. With zip64,
 * every classic field holds its maximum, as Go writes it, which is what makes readers such as
 * yauzl look for the zip64 record.
 */
export function endOfCentralDirectory(location: CentralDirectoryLocation, forceZip64 = false): Buffer {
  const { entryCount, directoryBytes, directoryOffset } = location;
  const zip64 =
    forceZip64 || entryCount >= UINT16_MAX || directoryBytes >= UINT32_MAX || directoryOffset >= UINT32_MAX;
  const zip64Bytes = zip64 ? ZIP64_END_OF_CENTRAL_DIRECTORY_BYTES + ZIP64_END_OF_CENTRAL_DIRECTORY_LOCATOR_BYTES : 0;
  const out = Buffer.alloc(zip64Bytes + END_OF_CENTRAL_DIRECTORY_BYTES);
  if (zip64) {
    const recordOffset = directoryOffset + directoryBytes;
    out.writeUInt32LE(ZIP64_END_OF_CENTRAL_DIRECTORY_SIGNATURE, 0);
    // The record's size counts neither the signature nor this size field.
    out.writeBigUInt64LE(BigInt(ZIP64_END_OF_CENTRAL_DIRECTORY_BYTES - 12), 4);
    out.writeUInt16LE(VERSION_MADE_BY, 12);
    out.writeUInt16LE(VERSION_ZIP64, 14);
    // 16..23: this disk and the directory's disk are both disk 0.
    out.writeBigUInt64LE(BigInt(entryCount), 24);
    out.writeBigUInt64LE(BigInt(entryCount), 32);
    out.writeBigUInt64LE(BigInt(directoryBytes), 40);
    out.writeBigUInt64LE(BigInt(directoryOffset), 48);
    const locator = ZIP64_END_OF_CENTRAL_DIRECTORY_BYTES;
    out.writeUInt32LE(ZIP64_END_OF_CENTRAL_DIRECTORY_LOCATOR_SIGNATURE, locator);
    // locator + 4: the zip64 record is on disk 0.
    out.writeBigUInt64LE(BigInt(recordOffset), locator + 8);
    out.writeUInt32LE(1, locator + 16); // total number of disks
  }
  const end = zip64Bytes;
  out.writeUInt32LE(END_OF_CENTRAL_DIRECTORY_SIGNATURE, end);
  // end + 4..7: this disk and the directory's disk are both disk 0.
  out.writeUInt16LE(zip64 ? UINT16_MAX : entryCount, end + 8);
  out.writeUInt16LE(zip64 ? UINT16_MAX : entryCount, end + 10);
  out.writeUInt32LE(zip64 ? UINT32_MAX : directoryBytes, end + 12);
  out.writeUInt32LE(zip64 ? UINT32_MAX : directoryOffset, end + 16);
  // end + 20: no archive comment.
  return out;
}


interface ZipSettings {
  readonly level: number;
  readonly modifiedAt: Date;
  readonly forceZip64: boolean;
}

function resolveOptions(options: ZipOptions | undefined): ZipSettings {
  if (options === undefined) return { level: 6, modifiedAt: new Date(), forceZip64: false };
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
  }
  const level = options.level === undefined ? 6 : options.level;
  if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > 9) {
    throw new TypeError(`Expected \`level\` to be an integer from 0 to 9, got ${describe(level)}`);
  }
  const modifiedAt = options.modifiedAt === undefined ? new Date() : options.modifiedAt;
  // DOS dates start in 1980 and the extended timestamp is an unsigned 32-bit count of seconds.
  if (
    !(modifiedAt instanceof Date) ||
    Number.isNaN(modifiedAt.getTime()) ||
    modifiedAt.getFullYear() < DOS_EPOCH_YEAR ||
    Math.floor(modifiedAt.getTime() / 1000) > UINT32_MAX
  ) {
    throw new TypeError(
      `Expected \`modifiedAt\` to be a valid Date from 1980-01-01 (local time) to 2106-02-07T06:28:15Z, ` +
        `the range zip timestamps can hold, got ${describe(modifiedAt)}`,
    );
  }
  const forceZip64 = options.forceZip64 === undefined ? false : options.forceZip64;
  if (typeof forceZip64 !== 'boolean') {
    throw new TypeError(`Expected \`forceZip64\` to be a boolean, got ${describe(forceZip64)}`);
  }
  // Copy the Date: the caller may change theirs after creating the stream.
  return { level, modifiedAt: new Date(modifiedAt.getTime()), forceZip64 };
}

/** Checks a written value's shape; runs for every chunk, so it only does constant-time checks. */
function checkChunk(chunk: unknown): ZipEntryChunk {
  if (typeof chunk !== 'object' || chunk === null) {
    throw new TypeError(`Expected a zip chunk \`{ entry, data }\`, got ${describe(chunk)}`);
  }
  const { entry, data, release } = chunk as { entry?: unknown; data?: unknown; release?: unknown };
  if (typeof entry !== 'string' || entry.length === 0) {
    throw new TypeError(`Expected chunk \`entry\` to be a non-empty string, got ${describe(entry)}`);
  }
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(`Expected chunk \`data\` of entry ${describe(entry)} to be a Buffer, got ${describe(data)}`);
  }
  if (release !== undefined && typeof release !== 'function') {
    throw new TypeError(`Expected chunk \`release\` of entry ${describe(entry)} to be a function, got ${describe(release)}`);
  }
  return chunk as ZipEntryChunk;
}

/** The entry whose data is being compressed. */
interface OpenEntry {
  readonly name: string;
  readonly header: EntryHeader;
  readonly localHeaderOffset: number;
  readonly deflate: DeflateRaw;
  crc32: number;
  uncompressedBytes: number;
  compressedBytes: number;
}

/**
 * A streaming zip writer. The writable side takes {@link ZipEntryChunk} objects; the readable side
 * yields the archive's bytes. Each entry is deflated by zlib on libuv's thread pool while the
 * caller produces the next chunks, and the CRC is computed natively with `zlib.crc32`.
 *
 * Memory stays bounded whatever the entry sizes: when the reader stops reading, deflate's output
 * fills up, deflate stops taking input, and then write() returns false. Only the central directory
 * (a few dozen bytes per entry) grows with the archive.
 *
 * Destroying the stream destroys the entry's deflate stream too. Errors in the written chunks
 * (a malformed chunk, an empty, unencodable or repeated entry name) destroy the stream with an
 * error that names the problem.
 */
export class ZipStream extends Transform {
  readonly #level: number;
  readonly #forceZip64: boolean;
  readonly #modified: DosDateTime;
  readonly #timestampExtra: Buffer;
  readonly #entries: ZipEntrySummary[] = [];
  /** Central directory records of the finished entries, written at the end. */
  readonly #directory: CentralDirectoryEntry[] = [];
  readonly #usedNames = new Set<string>();
  #open: OpenEntry | undefined;
  #outputPaused = false;
  #bytesWritten = 0;

  /** Prefer {@link createZipStream}; throws TypeError for invalid options. */
  constructor(options?: ZipOptions) {
    const settings = resolveOptions(options);
    super({
      writableObjectMode: true,
      writableHighWaterMark: WRITABLE_HIGH_WATER_MARK_CHUNKS,
      readableHighWaterMark: READABLE_HIGH_WATER_MARK,
    });
    this.#level = settings.level;
    this.#forceZip64 = settings.forceZip64;
    this.#modified = dosDateTime(settings.modifiedAt);
    this.#timestampExtra = extendedTimestampExtraField(settings.modifiedAt);
  }

  /** The finished entries in archive order; an entry appears once its data descriptor is written. */
  get entries(): readonly ZipEntrySummary[] {
    return this.#entries;
  }

  /** Archive bytes pushed to the readable side so far; after 'end', the archive's size. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    let checked: ZipEntryChunk;
    try {
      checked = checkChunk(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    const open = this.#open;
    if (open !== undefined && open.name === checked.entry) {
      this.#write(open, checked, callback);
      return;
    }
    let header: EntryHeader;
    try {
      header = this.#newEntryHeader(checked.entry);
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (open === undefined) {
      this.#write(this.#openEntry(checked.entry, header), checked, callback);
      return;
    }
    this.#closeEntry(open, () => this.#write(this.#openEntry(checked.entry, header), checked, callback));
  }

  override _flush(callback: TransformCallback): void {
    const open = this.#open;
    if (open === undefined) {
      this.#writeCentralDirectory();
      callback();
      return;
    }
    this.#closeEntry(open, () => {
      this.#writeCentralDirectory();
      callback();
    });
  }

  override _read(size: number): void {
    // The reader wants more: let the deflate output that push() refused earlier flow again.
    if (this.#outputPaused) {
      this.#outputPaused = false;
      this.#open?.deflate.resume();
    }
    // Transform's own _read releases a write callback it held for a full readable buffer.
    super._read(size);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const open = this.#open;
    this.#open = undefined;
    // Frees zlib's native memory now instead of at garbage collection; its 'error' listener stays,
    // so a late error from it cannot become an unhandled 'error' event.
    open?.deflate.destroy();
    callback(error);
  }

  /** Pushes archive bytes and counts them; false when the reader's buffer is full. */
  #emit(bytes: Buffer): boolean {
    this.#bytesWritten += bytes.length;
    return this.push(bytes);
  }

  /** Validates a new entry name and encodes what both of its headers share. */
  #newEntryHeader(name: string): EntryHeader {
    if (this.#usedNames.has(name)) {
      throw new Error(
        `Zip entry ${describe(name)} was already written and closed: entry names must be unique ` +
          `and an entry's chunks consecutive`,
      );
    }
    const encoded = Buffer.from(name, 'utf8');
    // A lone surrogate would be written as U+FFFD, so two distinct names could collide in the archive.
    if (encoded.toString('utf8') !== name) {
      throw new TypeError(`Expected zip entry name to be well-formed Unicode, got ${describe(name)}`);
    }
    if (encoded.length > UINT16_MAX) {
      throw new RangeError(
        `Expected zip entry name to be at most ${UINT16_MAX} bytes in UTF-8, got ${encoded.length} bytes ` +
          `for ${describe(name.slice(0, 40))}...`,
      );
    }
    return { name: encoded, modified: this.#modified, extra: this.#timestampExtra };
  }

  #openEntry(name: string, header: EntryHeader): OpenEntry {
    // zlib passes stream options on to its Transform, though @types/node's ZlibOptions omits them.
    const options: ZlibOptions & Pick<TransformOptions, 'writableHighWaterMark' | 'readableHighWaterMark'> = {
      level: this.#level,
      chunkSize: DEFLATE_OUTPUT_CHUNK_BYTES,
      writableHighWaterMark: DEFLATE_INPUT_HIGH_WATER_MARK,
      readableHighWaterMark: READABLE_HIGH_WATER_MARK,
    };
    const deflate = createDeflateRaw(options);
    const entry: OpenEntry = {
      name,
      header,
      localHeaderOffset: this.#bytesWritten,
      deflate,
      crc32: 0,
      uncompressedBytes: 0,
      compressedBytes: 0,
    };
    deflate.on('data', (compressed: Buffer) => {
      entry.compressedBytes += compressed.length;
      if (!this.#emit(compressed)) {
        // Deflate's readable buffer then fills, zlib stops, and deflate.write() starts refusing.
        this.#outputPaused = true;
        deflate.pause();
      }
    });
    deflate.on('error', (error: Error) => this.destroy(error));
    this.#usedNames.add(name);
    this.#open = entry;
    this.#emit(localFileHeader(header, this.#forceZip64));
    return entry;
  }

  /** Feeds data to the open entry; calls back at once while deflate has room, so work overlaps. */
  #write(entry: OpenEntry, { data, release }: ZipEntryChunk, callback: TransformCallback): void {
    if (data.length === 0) {
      release?.();
      callback();
      return;
    }
    entry.crc32 = crc32(data, entry.crc32);
    entry.uncompressedBytes += data.length;
    // Deflate calls back once zlib has taken the bytes into its own window; with an error (the
    // stream destroyed) zlib may still be reading them, so the buffer is not handed back.
    const written = release === undefined ? entry.deflate.write(data) : entry.deflate.write(data, (error) => {
      if (error === null || error === undefined) release();
    });
    if (written) callback();
    else entry.deflate.once('drain', () => callback());
  }

  /** Finishes the entry's deflate stream, then writes its data descriptor and calls `then`. */
  #closeEntry(entry: OpenEntry, then: () => void): void {
    entry.deflate.once('end', () => {
      const trailer: EntryTrailer = {
        crc32: entry.crc32,
        compressedBytes: entry.compressedBytes,
        uncompressedBytes: entry.uncompressedBytes,
      };
      this.#emit(dataDescriptor(trailer, this.#forceZip64));
      this.#directory.push({ ...entry.header, ...trailer, localHeaderOffset: entry.localHeaderOffset });
      this.#entries.push(Object.freeze({ name: entry.name, ...trailer }));
      this.#open = undefined;
      this.#outputPaused = false;
      then();
    });
    entry.deflate.end();
  }

  #writeCentralDirectory(): void {
    const directoryOffset = this.#bytesWritten;
    const parts = this.#directory.map((entry) => centralDirectoryHeader(entry, this.#forceZip64));
    let directoryBytes = 0;
    for (const part of parts) directoryBytes += part.length;
    parts.push(
      endOfCentralDirectory(
        { entryCount: this.#directory.length, directoryBytes, directoryOffset },
        this.#forceZip64,
      ),
    );
    // One push: the directory is already held in memory as records, so this at most doubles it.
    this.#emit(Buffer.concat(parts));
    this.#directory.length = 0;
    this.#usedNames.clear();
  }
}

/**
 * Creates a streaming zip writer: write {@link ZipEntryChunk} objects, read the archive's bytes.
 * Throws a TypeError for invalid options, naming the option, the value and the rule.
 *
 * @example
 * await pipeline(rows, toCsvChunks('chats.csv'), createZipStream({ level: 6 }), createWriteStream(path));
 */
export function createZipStream(options?: ZipOptions): ZipStream {
  return new ZipStream(options);
}
