import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import type { ZipEntryChunk } from '../sinks/zip.js';
import { ByteOutput } from './byte-output.js';
import { CopyTextRow } from './copy-text.js';
import { PartPlanner } from './parts.js';

/** Options every {@link CopyRowPartsStage} takes: how rows are grouped and split into parts. */
export interface CopyRowPartsOptions {
  /** How many columns each COPY text row has. */
  readonly columns: number;
  /**
   * The column whose value is the group a row belongs to (a chat); parts break only between
   * groups, whose rows come together.
   */
  readonly groupColumn: number;
  /** How many rows the row's group has; asked only at the first row of each group. */
  readonly groupSize: (row: CopyTextRow) => number;
  /** At most this many data rows per part. */
  readonly rowsPerFile: number;
  /** Output is coalesced into chunks of about this many bytes before it goes to the zip; default 256 KiB. */
  readonly chunkSize?: number;
  /** Told the data rows written so far each time a chunk goes out (progress, heartbeats). */
  readonly onRows?: (rows: number) => void;
}

const LF = 0x0a;

/**
 * The stream shell shared by the CSV and XLSX writers: COPY text bytes in, {@link ZipEntryChunk}s
 * out, rows placed into parts (files or sheets) between groups. Rows are formatted from the COPY
 * bytes straight into an output buffer (no string per row or chunk: that round trip was the main
 * thread's largest cost). Output is coalesced into large chunks (one small chunk per row made zlib
 * ten times slower); the readable side holds at most a few chunks, so backpressure from the zip
 * reaches the database read. Large values may be passed on as views of the input chunks (see
 * `ByteOutput.share`): input chunks must not be written after they are written here, which no
 * stream's chunks are.
 *
 * A subclass says what a part starts and ends with and how a row is written.
 */
export abstract class CopyRowPartsStage extends Transform {
  /** Where subclasses write; {@link flushOutput} hands it on as chunks of the current entry. */
  protected readonly output: ByteOutput;
  readonly #chunkSize: number;
  readonly #onRows: (rows: number) => void;
  readonly #groupColumn: number;
  readonly #groupSizeOf: (row: CopyTextRow) => number;
  readonly #planner: PartPlanner;
  readonly #row: CopyTextRow;
  #pending: Buffer[] = [];
  #part = -1;
  #entry = '';
  #rows = 0;
  #groupKey: string | null | undefined;
  /** The raw bytes of the current group's key: rows of one group are recognised without decoding. */
  #groupKeyBytes: Buffer = Buffer.alloc(0);
  #groupSize = 0;
  readonly #rowsPerPart: number[] = [];

  constructor(options: CopyRowPartsOptions) {
    super({ writableObjectMode: false, readableObjectMode: true, readableHighWaterMark: 4 });
    // Each chunk wakes a deflate thread, which on two busy cores takes the main thread's core for a
    // moment: 256 KiB chunks took 5% off a 1M export's wall time against 64 KiB (measured, interleaved).
    this.#chunkSize = options.chunkSize ?? 256 * 1024;
    this.#onRows = options.onRows ?? (() => {});
    this.#groupColumn = options.groupColumn;
    this.#groupSizeOf = options.groupSize;
    this.#planner = new PartPlanner(options.rowsPerFile);
    this.#row = new CopyTextRow(options.columns);
    // Room for a chunk and the record that crosses its end, so most chunks never grow.
    this.output = new ByteOutput(this.#chunkSize + 16 * 1024);
  }

  /** Data rows written so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Data rows of each part, in order. */
  get rowsPerPart(): readonly number[] {
    return this.#rowsPerPart;
  }

  /** The index of the current part, from 0 (-1 before the first). */
  protected get part(): number {
    return this.#part;
  }

  /** The zip entry the output goes to. */
  protected get entry(): string {
    return this.#entry;
  }

  /**
   * Called when part `part` starts (and, with `part` 0, before the end of an export without rows):
   * return its zip entry's name after writing what the part starts with. Output of the previous
   * part was handed on already, and {@link endPart} was called for it.
   */
  protected abstract startPart(part: number): string;

  /** Writes one data row of the current part; `rowInPart` counts from 0. */
  protected abstract writeRow(row: CopyTextRow, rowInPart: number): void;

  /** Called when the current part is complete: write what it ends with. */
  protected endPart(): void {}

  /** Called once after the last part ended: the place to push entries that follow the parts. */
  protected endParts(): void {}

  /** Whether output may go out now; a subclass that must see more rows first returns false. */
  protected canEmit(): boolean {
    return true;
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
      this.endPart();
      this.flushOutput();
      this.endParts();
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
    const groupColumn = this.#groupColumn;
    const chunkSize = this.#chunkSize;
    const row = this.#row;
    const output = this.output;
    const rowsPerPart = this.#rowsPerPart;
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
          this.#groupSize = this.#groupSizeOf(row);
        }
      }
      // The planner takes the key as a string, as the string path gave it (a NULL key included).
      const part = this.#planner.place(this.#groupKey as string, this.#groupSize);
      if (part !== this.#part) {
        if (this.#part !== -1) this.endPart();
        this.#startPart(part);
      }
      const last = rowsPerPart.length - 1;
      this.writeRow(row, rowsPerPart[last]!);
      this.#rows += 1;
      rowsPerPart[last]! += 1;
      if (output.size >= chunkSize && this.canEmit()) this.flushOutput();
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
    this.flushOutput();
    this.#part = part;
    this.#rowsPerPart.push(0);
    this.#entry = this.startPart(part);
  }

  /** Passes `data` on as a chunk of zip entry `entry` (one the zip has not closed yet, or a new one). */
  protected pushEntryData(entry: string, data: Buffer): void {
    const piece: ZipEntryChunk = { entry, data };
    this.push(piece);
  }

  /** Hands the output written so far on as chunks of the current entry. */
  protected flushOutput(): void {
    if (this.#part === -1) return;
    if (this.output.size === 0) return;
    // The zip may still hold these after push() returns: their buffers are written again only
    // once it hands them back.
    const output = this.output;
    for (const data of output.take()) {
      const piece: ZipEntryChunk = { entry: this.#entry, data, release: () => output.release(data) };
      this.push(piece);
    }
    this.#onRows(this.#rows);
  }
}
