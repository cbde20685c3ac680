import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import type { ZipEntryChunk } from '../sinks/zip.js';
import { ByteOutput } from './byte-output.js';
import { CopyTextRow } from './copy-text.js';
import { UTF8_BOM } from './csv.js';
import { PartPlanner } from './parts.js';

/** Options of {@link createCsvPartsStage}. */
export interface CsvPartsOptions {
  /** How many columns each COPY text row has. */
  readonly columns: number;
  /** The header record, written at the top of every part. */
  readonly headerRecord: string;
  /** Start every part with a UTF-8 byte order mark. */
  readonly bom: boolean;
  /** Appends one parsed row as a CSV record (CRLF included), as UTF-8 bytes. */
  readonly formatRecord: (out: ByteOutput, row: CopyTextRow) => void;
  /**
   * The column whose value is the group a row belongs to (a chat); parts break only between
   * groups, whose rows come together.
   */
  readonly groupColumn: number;
  /** How many rows the row's group has; asked only at the first row of each group. */
  readonly groupSize: (row: CopyTextRow) => number;
  /** At most this many data rows per part. */
  readonly rowsPerFile: number;
  /** Whether the export has more than one part, known before the first row (from a count). */
  readonly multipart: boolean;
  /** Names part `index` (from 0). */
  readonly partName: (index: number, multipart: boolean) => string;
  /** Output is coalesced into chunks of about this many bytes before it goes to the zip. */
  readonly chunkSize?: number;
  /** Told the data rows written so far each time a chunk goes out (progress, heartbeats). */
  readonly onRows?: (rows: number) => void;
}

const LF = 0x0a;

/**
 * The stream shell around the pure row functions: COPY text bytes in, CSV bytes out as
 * {@link ZipEntryChunk}s tagged with their part's file name. Rows are formatted from the COPY bytes
 * straight into an output buffer (no string per row or chunk: that round trip was the main thread's
 * largest cost). Output is coalesced into large chunks (one small chunk per row made zlib ten times
 * slower); the readable side holds at most a few chunks, so backpressure from the zip reaches the
 * database read. Large values may be passed on as views of the input chunks (see
 * `ByteOutput.share`): input chunks must not be written after they are written here, which no
 * stream's chunks are.
 */
export class CsvPartsStage extends Transform {
  readonly #options: Required<CsvPartsOptions>;
  readonly #planner: PartPlanner;
  readonly #row: CopyTextRow;
  readonly #output: ByteOutput;
  readonly #header: Buffer;
  #pending: Buffer[] = [];
  #part = -1;
  #entry = '';
  #rows = 0;
  #groupKey: string | null | undefined;
  /** The raw bytes of the current group's key: rows of one group are recognised without decoding. */
  #groupKeyBytes: Buffer = Buffer.alloc(0);
  #groupSize = 0;
  readonly #files: string[] = [];
  readonly #rowsPerFile: number[] = [];

  constructor(options: CsvPartsOptions) {
    super({ writableObjectMode: false, readableObjectMode: true, readableHighWaterMark: 4 });
    this.#options = { chunkSize: 64 * 1024, onRows: () => {}, ...options };
    this.#planner = new PartPlanner(options.rowsPerFile);
    this.#row = new CopyTextRow(options.columns);
    // Room for a chunk and the record that crosses its end, so most chunks never grow.
    this.#output = new ByteOutput(this.#options.chunkSize + 16 * 1024);
    this.#header = Buffer.from((options.bom ? UTF8_BOM : '') + options.headerRecord, 'utf8');
  }

  /** Data rows written so far. */
  get rows(): number {
    return this.#rows;
  }

  /** The part file names written so far, in order. */
  get files(): readonly string[] {
    return this.#files;
  }

  /** Data rows of each part, in the order of {@link files}. */
  get rowsPerPart(): readonly number[] {
    return this.#rowsPerFile;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      // An empty chunk is no part of a row (it must not make the end look like a cut row).
      if (chunk.length === 0) {
        callback();
        return;
      }
      const lastLineEnd = chunk.lastIndexOf(LF);
      if (lastLineEnd === -1) {
        this.#pending.push(chunk);
        callback();
        return;
      }
      let from = 0;
      if (this.#pending.length > 0) {
        // Only the row that crosses into this chunk is joined, not the whole chunk (a copy of it all).
        const firstLineEnd = chunk.indexOf(LF);
        this.#writeComplete(Buffer.concat([...this.#pending, chunk.subarray(0, firstLineEnd)]));
        from = firstLineEnd + 1;
      }
      if (from <= lastLineEnd) this.#writeComplete(from === 0 ? chunk.subarray(0, lastLineEnd) : chunk.subarray(from, lastLineEnd));
      this.#pending = lastLineEnd + 1 < chunk.length ? [chunk.subarray(lastLineEnd + 1)] : [];
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.#pending.length > 0) throw new Error('COPY output ended in the middle of a row');
      // An export without rows still delivers its header, so the merchant sees an empty report.
      if (this.#part === -1) this.#startPart(0);
      this.#emit();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Writes the rows of `src`, whole rows without the last LF. */
  #writeComplete(src: Buffer): void {
    // Complete rows end at an LF, which no multi-byte character holds: each run of them is valid
    // UTF-8 on its own exactly when the whole stream is. Native code, a small cost per chunk.
    if (!isUtf8(src)) throw new TypeError('COPY output is not valid UTF-8: the encoded data was not valid for encoding utf-8');
    this.#writeRows(src);
  }

  #writeRows(src: Buffer): void {
    const { formatRecord, groupColumn, groupSize, chunkSize } = this.#options;
    const row = this.#row;
    const output = this.#output;
    let start = 0;
    while (start <= src.length) {
      let end = src.indexOf(LF, start);
      if (end === -1) end = src.length;
      row.parse(src, start, end);
      // The key is decoded and the size read once per group, not per row: they only matter when a
      // group starts, and equal bytes are an equal key.
      if (this.#groupKey === undefined || !this.#sameGroupBytes(row, groupColumn)) {
        const key = row.text(groupColumn);
        this.#groupKeyBytes = Buffer.from(src.subarray(row.starts[groupColumn], row.ends[groupColumn]));
        if (key !== this.#groupKey) {
          this.#groupKey = key;
          this.#groupSize = groupSize(row);
        }
      }
      // The planner takes the key as a string, as the string path gave it (a NULL key included).
      const part = this.#planner.place(this.#groupKey as string, this.#groupSize);
      if (part !== this.#part) this.#startPart(part);
      formatRecord(output, row);
      this.#rows += 1;
      this.#rowsPerFile[this.#rowsPerFile.length - 1]! += 1;
      if (output.size >= chunkSize) this.#emit();
      start = end + 1;
    }
  }

  #sameGroupBytes(row: CopyTextRow, column: number): boolean {
    const key = this.#groupKeyBytes;
    const start = row.starts[column]!;
    if (row.ends[column]! - start !== key.length) return false;
    const src = row.src;
    for (let i = 0; i < key.length; i++) if (src[start + i] !== key[i]) return false;
    return true;
  }

  #startPart(part: number): void {
    this.#emit();
    this.#part = part;
    this.#entry = this.#options.partName(part, this.#options.multipart);
    this.#files.push(this.#entry);
    this.#rowsPerFile.push(0);
    this.#output.bytes(this.#header, 0, this.#header.length);
  }

  #emit(): void {
    if (this.#part === -1) return;
    if (this.#output.size === 0) return;
    // Fresh buffers per chunk: the zip may still hold these after push() returns.
    for (const data of this.#output.take()) {
      const piece: ZipEntryChunk = { entry: this.#entry, data };
      this.push(piece);
    }
    this.#options.onRows(this.#rows);
  }
}

/** Creates a {@link CsvPartsStage}. */
export function createCsvPartsStage(options: CsvPartsOptions): CsvPartsStage {
  return new CsvPartsStage(options);
}
