import { Transform, type TransformCallback } from 'node:stream';
import type { ZipEntryChunk } from '../sinks/zip.js';
import { parseCopyTextRow } from './copy-text.js';
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
  /** Formats one parsed row as a CSV record (CRLF included). */
  readonly formatRecord: (row: readonly (string | null)[]) => string;
  /** The group a row belongs to (a chat); parts break only between groups, whose rows come together. */
  readonly groupKey: (row: readonly (string | null)[]) => string;
  /** How many rows the row's group has; asked only at the first row of each group. */
  readonly groupSize: (row: readonly (string | null)[]) => number;
  /** At most this many data rows per part. */
  readonly rowsPerFile: number;
  /** Whether the export has more than one part, known before the first row (from a count). */
  readonly multipart: boolean;
  /** Names part `index` (from 0). */
  readonly partName: (index: number, multipart: boolean) => string;
  /** Output is coalesced into chunks of about this many characters before it goes to the zip. */
  readonly chunkSize?: number;
  /** Told the data rows written so far each time a chunk goes out (progress, heartbeats). */
  readonly onRows?: (rows: number) => void;
}

/**
 * The stream shell around the pure row functions: COPY text bytes in, CSV bytes out as
 * {@link ZipEntryChunk}s tagged with their part's file name. Output is coalesced into large chunks
 * (one small chunk per row made zlib ten times slower); the readable side holds at most a few chunks,
 * so backpressure from the zip reaches the database read.
 */
export class CsvPartsStage extends Transform {
  readonly #options: Required<CsvPartsOptions>;
  readonly #planner: PartPlanner;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  #pending: Buffer[] = [];
  #part = -1;
  #entry = '';
  #output = '';
  #rows = 0;
  #groupKey: string | undefined;
  #groupSize = 0;
  readonly #files: string[] = [];
  readonly #rowsPerFile: number[] = [];

  constructor(options: CsvPartsOptions) {
    super({ writableObjectMode: false, readableObjectMode: true, readableHighWaterMark: 4 });
    this.#options = { chunkSize: 64 * 1024, onRows: () => {}, ...options };
    this.#planner = new PartPlanner(options.rowsPerFile);
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
      const lastLineEnd = chunk.lastIndexOf(0x0a);
      if (lastLineEnd === -1) {
        this.#pending.push(chunk);
        callback();
        return;
      }
      const complete = chunk.subarray(0, lastLineEnd);
      const text =
        this.#pending.length === 0
          ? this.#decoder.decode(complete)
          : this.#decoder.decode(Buffer.concat([...this.#pending, complete]));
      this.#pending = lastLineEnd + 1 < chunk.length ? [chunk.subarray(lastLineEnd + 1)] : [];
      this.#writeRows(text);
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

  #writeRows(text: string): void {
    const { columns, formatRecord, groupKey, groupSize, chunkSize } = this.#options;
    let start = 0;
    while (start <= text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length;
      const row = parseCopyTextRow(text.slice(start, end), columns);
      const key = groupKey(row);
      // The size is read once per group, not per row: it only matters when a group starts.
      if (key !== this.#groupKey) {
        this.#groupKey = key;
        this.#groupSize = groupSize(row);
      }
      const part = this.#planner.place(key, this.#groupSize);
      if (part !== this.#part) this.#startPart(part);
      this.#output += formatRecord(row);
      this.#rows += 1;
      this.#rowsPerFile[this.#rowsPerFile.length - 1]! += 1;
      if (this.#output.length >= chunkSize) this.#emit();
      start = end + 1;
    }
  }

  #startPart(part: number): void {
    this.#emit();
    this.#part = part;
    this.#entry = this.#options.partName(part, this.#options.multipart);
    this.#files.push(this.#entry);
    this.#rowsPerFile.push(0);
    this.#output = (this.#options.bom ? UTF8_BOM : '') + this.#options.headerRecord;
  }

  #emit(): void {
    if (this.#part === -1) return;
    if (this.#output.length === 0) return;
    const data = Buffer.from(this.#output, 'utf8');
    this.#output = '';
    const piece: ZipEntryChunk = { entry: this.#entry, data };
    this.push(piece);
    this.#options.onRows(this.#rows);
  }
}

/** Creates a {@link CsvPartsStage}. */
export function createCsvPartsStage(options: CsvPartsOptions): CsvPartsStage {
  return new CsvPartsStage(options);
}
