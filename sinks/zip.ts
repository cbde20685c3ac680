import { Buffer } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { constants as zlibConstants, crc32, deflateRaw, type ZlibOptions } from 'node:zlib';
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

// How deflate runs. An entry's bytes are cut into segments of SEGMENT_BYTES, and each segment is
// deflated on its own as one job on libuv's thread pool, ending on a byte boundary (a sync flush;
// the entry's last segment ends the stream), so the segments' outputs joined are one deflate
// stream that any reader inflates. Each segment's deflate starts with the previous segment's last
// 32 KiB as its dictionary, as pigz does, so its matches reach back as far as one stream's would:
// readers need nothing, as those bytes are in their window already. Two segments are deflated at once: while the main thread is
// busy producing the next rows, the pool always has a whole segment to work on. A zlib stream
// instead needs the main thread between every piece of work it does, and measured no overlap with
// a busy producer: a 1 GB workbook sheet took producer time plus deflate time.
//
// Memory budget: at most SEGMENTS_IN_FLIGHT segments deflating or waiting to be read, plus the one
// being filled, each with its input (1 MiB) and its output (at most about 1 MiB), and zlib's state
// per job (about 300 KiB at the default memLevel); the writable side queues 4 chunks on top. When
// the reader stops, finished segments wait, then filling stops, then write() returns false.
/** Chunks queued on the writable side before write() returns false. */
const WRITABLE_HIGH_WATER_MARK_CHUNKS = 4;
/** Uncompressed bytes deflated as one job on the thread pool. */
const SEGMENT_BYTES = 1024 * 1024;
/** Segments deflating or holding output the reader has not taken yet. */
const SEGMENTS_IN_FLIGHT = 2;
/**
 * Size of a job's first output buffer before the entry's first segment told how well it compresses.
 * Later jobs size theirs from the previous segment's output, so that most fit one buffer (one
 * thread-pool round trip, no concatenation) without allocating much more than they fill: every
 * job's buffer is garbage once pushed, and V8 collects it only when external memory has grown.
 */
const FIRST_OUTPUT_CHUNK_BYTES = 64 * 1024;
const MIN_OUTPUT_CHUNK_BYTES = 16 * 1024;
/** Deflate's window: the most a match can reach back, hence the dictionary a segment needs. */
const WINDOW_BYTES = 32 * 1024;
/** Compressed bytes this stream buffers for a slow reader. */
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
   * The next bytes of the entry. The stream keeps a reference until it has copied them into its
   * deflate segments: do not write into the buffer again before {@link release} is called.
   */
  readonly data: Buffer;
  /**
   * Called once the stream has copied {@link data}, so its buffer may be written again; at most
   * once, and never when the stream is destroyed first (then nothing may reuse the buffer).
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
  crc32: number;
  uncompressedBytes: number;
  compressedBytes: number;
}

/** A piece of an entry being deflated on the thread pool, or deflated and waiting to be pushed. */
interface Segment {
  /** Undefined for an entry's last segment when it has no bytes. */
  readonly input: Buffer | undefined;
  output: Buffer | undefined;
}

/** A written chunk whose bytes are not all copied into segments yet. */
interface PendingChunk {
  readonly data: Uint8Array;
  readonly release: (() => void) | undefined;
  readonly callback: TransformCallback;
  offset: number;
}

/**
 * A streaming zip writer. The writable side takes {@link ZipEntryChunk} objects; the readable side
 * yields the archive's bytes. Each entry is deflated by zlib on libuv's thread pool, in 1 MiB
 * segments two at a time, while the caller produces the next chunks; the CRC is computed natively
 * with `zlib.crc32`. A written chunk's bytes are copied, so its `release` runs as soon as it is
 * taken in.
 *
 * Memory stays bounded whatever the entry sizes: when the reader stops reading, deflated segments
 * wait, no new segment starts, and then write() returns false. Only the central directory (a few
 * dozen bytes per entry) grows with the archive.
 *
 * Destroying the stream drops the segments in flight (a job already on the pool finishes, and its
 * output is thrown away). Errors in the written chunks
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
  /** The open entry's segments in order: deflating, or deflated and not pushed yet. */
  readonly #segments: Segment[] = [];
  /** Input buffers of finished segments, reused for the next ones. */
  readonly #spareInputs: Buffer[] = [];
  /** The segment being filled and how many of its bytes are taken. */
  #filling: Buffer | undefined;
  #filled = 0;
  #pending: PendingChunk | undefined;
  /** How much of the first segment's output is pushed already. */
  #pushedFrom = 0;
  /** Set while the open entry is being closed: runs once its last segment has been pushed. */
  #afterClose: (() => void) | undefined;
  #lastSegmentStarted = false;
  /** The open entry's last WINDOW_BYTES before the segment being filled, once it has some. */
  readonly #window = Buffer.allocUnsafe(WINDOW_BYTES);
  #hasWindow = false;
  /** Output buffer size for the next job, from the size of the last segment's output. */
  #outputChunkBytes = FIRST_OUTPUT_CHUNK_BYTES;
  #pumping = false;

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
    // The reader wants more: push the deflated segments that waited for it.
    if (this.#outputPaused) {
      this.#outputPaused = false;
      this.#pump();
    }
    // Transform's own _read releases a write callback it held for a full readable buffer.
    super._read(size);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A job already on the thread pool cannot be stopped; its result is dropped when it arrives.
    this.#open = undefined;
    this.#segments.length = 0;
    this.#pushedFrom = 0;
    this.#spareInputs.length = 0;
    this.#filling = undefined;
    this.#pending = undefined;
    this.#afterClose = undefined;
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
    const entry: OpenEntry = {
      name,
      header,
      localHeaderOffset: this.#bytesWritten,
      crc32: 0,
      uncompressedBytes: 0,
      compressedBytes: 0,
    };
    this.#usedNames.add(name);
    this.#open = entry;
    this.#lastSegmentStarted = false;
    this.#hasWindow = false;
    this.#emit(localFileHeader(header, this.#forceZip64));
    return entry;
  }

  /** Takes in data for the open entry; calls back once it is copied into segments. */
  #write(entry: OpenEntry, { data, release }: ZipEntryChunk, callback: TransformCallback): void {
    if (data.length === 0) {
      release?.();
      callback();
      return;
    }
    entry.crc32 = crc32(data, entry.crc32);
    entry.uncompressedBytes += data.length;
    this.#pending = { data, release, callback, offset: 0 };
    this.#pump();
  }

  /** Deflates the open entry's remaining bytes as its last segment, then writes its data descriptor and calls `then`. */
  #closeEntry(entry: OpenEntry, then: () => void): void {
    this.#afterClose = () => {
      const trailer: EntryTrailer = {
        crc32: entry.crc32,
        compressedBytes: entry.compressedBytes,
        uncompressedBytes: entry.uncompressedBytes,
      };
      this.#emit(dataDescriptor(trailer, this.#forceZip64));
      this.#directory.push({ ...entry.header, ...trailer, localHeaderOffset: entry.localHeaderOffset });
      this.#entries.push(Object.freeze({ name: entry.name, ...trailer }));
      this.#open = undefined;
      then();
    };
    this.#pump();
  }

  /**
   * Moves everything along as far as it can go: pushes deflated segments in order while the reader
   * takes them, copies the pending chunk into segments and starts them while fewer than
   * SEGMENTS_IN_FLIGHT are out, and finishes a closing entry once its last segment is pushed. Runs
   * again on every event that can unblock it (a job done, the reader wanting more, a new chunk); a
   * callback it calls may write the next chunk, which the running loop then takes.
   */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.destroyed && this.#step());
    } finally {
      this.#pumping = false;
    }
  }

  /** One move of {@link #pump}; false when nothing can move until the next event. */
  #step(): boolean {
    const segments = this.#segments;
    const first = segments[0];
    const output = first?.output;
    if (!this.#outputPaused && output !== undefined) {
      // In pieces of the readable buffer's size, so a slow reader holds at most one piece more.
      const from = this.#pushedFrom;
      const to = Math.min(output.length, from + READABLE_HIGH_WATER_MARK);
      if (to === output.length) {
        segments.shift();
        if (first!.input !== undefined) this.#spareInputs.push(first!.input);
        this.#pushedFrom = 0;
      } else {
        this.#pushedFrom = to;
      }
      this.#open!.compressedBytes += to - from;
      if (to > from && !this.#emit(output.subarray(from, to))) this.#outputPaused = true;
      return true;
    }
    const pending = this.#pending;
    if (pending !== undefined) {
      if (this.#filled === SEGMENT_BYTES) {
        if (segments.length >= SEGMENTS_IN_FLIGHT) return false;
        this.#startSegment(false);
      }
      let filling = this.#filling;
      if (filling === undefined) {
        filling = this.#spareInputs.pop() ?? Buffer.allocUnsafe(SEGMENT_BYTES);
        this.#filling = filling;
        this.#filled = 0;
      }
      const { data, offset } = pending;
      const taken = Math.min(data.length - offset, SEGMENT_BYTES - this.#filled);
      filling.set(data.subarray(offset, offset + taken), this.#filled);
      this.#filled += taken;
      pending.offset = offset + taken;
      if (pending.offset === data.length) {
        this.#pending = undefined;
        pending.release?.();
        pending.callback();
      }
      return true;
    }
    const afterClose = this.#afterClose;
    if (afterClose === undefined) return false;
    if (!this.#lastSegmentStarted) {
      if (segments.length >= SEGMENTS_IN_FLIGHT) return false;
      this.#startSegment(true);
      this.#lastSegmentStarted = true;
      return true;
    }
    if (segments.length > 0) return false;
    this.#afterClose = undefined;
    afterClose();
    return true;
  }

  /** Deflates the filled segment (an empty one for an entry's last, if need be) on the thread pool. */
  #startSegment(last: boolean): void {
    const input = this.#filling;
    const length = input === undefined ? 0 : this.#filled;
    this.#filling = undefined;
    this.#filled = 0;
    const segment: Segment = { input, output: undefined };
    this.#segments.push(segment);
    const options: ZlibOptions = {
      level: this.#level,
      chunkSize: this.#outputChunkBytes,
      finishFlush: last ? zlibConstants.Z_FINISH : zlibConstants.Z_SYNC_FLUSH,
    };
    // zlib copies the dictionary when the job is created, so the window can be overwritten next.
    if (this.#hasWindow) options.dictionary = this.#window;
    deflateRaw(input === undefined ? Buffer.alloc(0) : input.subarray(0, length), options, (error, output) => {
      if (this.destroyed || !this.#segments.includes(segment)) return;
      if (error !== null) {
        this.destroy(error);
        return;
      }
      segment.output = output;
      // An eighth more than the last output, in 4 KiB steps: segments of one entry compress alike.
      const next = Math.ceil((output.length * 1.125) / 4096) * 4096;
      this.#outputChunkBytes = Math.max(MIN_OUTPUT_CHUNK_BYTES, next);
      this.#pump();
    });
    // After deflateRaw() took its copy of the previous window. Only full segments come before
    // another one, and the window after an entry's last is never used.
    if (!last && input !== undefined) {
      input.copy(this.#window, 0, SEGMENT_BYTES - WINDOW_BYTES, SEGMENT_BYTES);
      this.#hasWindow = true;
    }
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
    this.#spareInputs.length = 0;
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
