import type { ZipEntryChunk } from '../sinks/zip.js';
import { ByteOutput } from './byte-output.js';
import type { CopyTextRow } from './copy-text.js';
import { CopyRowPartsStage, type CopyRowPartsOptions } from './copy-row-parts.js';
import { UTF8_BOM } from './csv.js';

/** Options of {@link createCsvPartsStage}. */
export interface CsvPartsOptions extends CopyRowPartsOptions {
  /** The header record, written at the top of every part. */
  readonly headerRecord: string;
  /** Start every part with a UTF-8 byte order mark. */
  readonly bom: boolean;
  /** Appends one parsed row as a CSV record (CRLF included), as UTF-8 bytes. */
  readonly formatRecord: (out: ByteOutput, row: CopyTextRow) => void;
  /** Whether the export has more than one part, known before the first row (from a count). */
  readonly multipart: boolean;
  /** Names part `index` (from 0). */
  readonly partName: (index: number, multipart: boolean) => string;
}

/**
 * COPY text bytes in, CSV bytes out as {@link ZipEntryChunk}s tagged with their part's file name
 * (see {@link CopyRowPartsStage} for the streaming rules).
 */
export class CsvPartsStage extends CopyRowPartsStage {
  readonly #formatRecord: (out: ByteOutput, row: CopyTextRow) => void;
  readonly #partName: (index: number, multipart: boolean) => string;
  readonly #multipart: boolean;
  readonly #header: Buffer;
  readonly #files: string[] = [];

  constructor(options: CsvPartsOptions) {
    super(options);
    this.#formatRecord = options.formatRecord;
    this.#partName = options.partName;
    this.#multipart = options.multipart;
    this.#header = Buffer.from((options.bom ? UTF8_BOM : '') + options.headerRecord, 'utf8');
  }

  /** The part file names written so far, in order. */
  get files(): readonly string[] {
    return this.#files;
  }

  protected override startPart(part: number): string {
    const name = this.#partName(part, this.#multipart);
    this.#files.push(name);
    this.output.bytes(this.#header, 0, this.#header.length);
    return name;
  }

  protected override writeRow(row: CopyTextRow): void {
    this.#formatRecord(this.output, row);
  }
}

/** Creates a {@link CsvPartsStage}. */
export function createCsvPartsStage(options: CsvPartsOptions): CsvPartsStage {
  return new CsvPartsStage(options);
}
