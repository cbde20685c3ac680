import type { CopyTextRow } from './copy-text.js';
import { CopyRowPartsStage, type CopyRowPartsOptions } from './copy-row-parts.js';
import {
  XLSX_SHARED_STRINGS_ENTRY,
  XlsxRowWriter,
  XlsxSharedStrings,
  XlsxStyle,
  xlsxPackageParts,
  xlsxSheetEnd,
  xlsxSheetEntry,
  xlsxSheetStart,
  type XlsxSharedStringsLimits,
} from './xlsx.js';

/** Options of {@link createXlsxSheetsStage}. */
export interface XlsxSheetsOptions extends CopyRowPartsOptions {
  /** The header row's texts, at the top of every sheet (bold, frozen, with the autofilter). */
  readonly headers: readonly string[];
  /** Writes one parsed row as XLSX row `rowNumber` (the header is row 1). */
  readonly writeRow: (writer: XlsxRowWriter, row: CopyTextRow, rowNumber: number) => void;
  /**
   * Every sheet's name, in order, known before the first row (from the export's plan): the
   * workbook lists them before the sheets are written. Writing more or fewer parts is an error.
   */
  readonly sheetNames: readonly string[];
  /** Column widths are measured over the header and this many first rows of each sheet; default 100. */
  readonly measureRows?: number;
  /**
   * Give the workbook a bounded shared-strings table for the cells `writeRow` writes with
   * `sharedText` (see {@link XlsxSharedStrings}); without it those cells are inline strings too.
   */
  readonly sharedStrings?: XlsxSharedStringsLimits | boolean;
}

/** A sheet's measured rows are held back at most up to this many bytes before widths are fixed. */
const MAX_MEASURED_BYTES = 1024 * 1024;

/**
 * COPY text bytes in, an XLSX package out as {@link ZipEntryChunk}s for the project's zip writer:
 * the package parts first, then one worksheet per part, rows written as they arrive (nothing is
 * kept per row), then the shared-strings table when there is one (bounded, complete only after the
 * last row). Each sheet's first rows are held back (bounded by rows and bytes) until the column
 * widths are known, since `<cols>` precedes the rows in a worksheet.
 */
export class XlsxSheetsStage extends CopyRowPartsStage {
  readonly #writer: XlsxRowWriter;
  readonly #headers: readonly string[];
  readonly #writeRow: (writer: XlsxRowWriter, row: CopyTextRow, rowNumber: number) => void;
  readonly #sheetNames: readonly string[];
  readonly #measureRows: number;
  #widths = new Int32Array(0);
  #measuring = false;
  #sheets = 0;

  constructor(options: XlsxSheetsOptions) {
    super(options);
    if (options.sheetNames.length < 1) throw new TypeError('Expected `sheetNames` to name at least one sheet');
    if (options.headers.length < 1) throw new TypeError('Expected `headers` to name at least one column');
    const measureRows = options.measureRows ?? 100;
    if (!Number.isSafeInteger(measureRows) || measureRows < 0) {
      throw new TypeError(`Expected \`measureRows\` to be a whole number from 0 and up, got ${measureRows}`);
    }
    this.#headers = options.headers;
    this.#writeRow = options.writeRow;
    this.#sheetNames = options.sheetNames;
    this.#measureRows = measureRows;
    this.#writer = new XlsxRowWriter(this.output, options.headers.length);
    const shared = options.sharedStrings ?? false;
    if (shared !== false) this.#writer.sharedStrings = new XlsxSharedStrings(shared === true ? {} : shared);
  }

  /** The sheets written so far, by name, in order. */
  get sheets(): readonly string[] {
    return this.#sheetNames.slice(0, this.#sheets);
  }

  /** Cells cut at Excel's 32,767-character limit so far. */
  get truncatedCells(): number {
    return this.#writer.truncatedCells;
  }

  protected override startPart(part: number): string {
    if (part >= this.#sheetNames.length) {
      throw new Error(`The export needs sheet ${part + 1} but was planned with ${this.#sheetNames.length}`);
    }
    if (part === 0) {
      const parts = xlsxPackageParts(this.#sheetNames, this.#writer.sharedStrings !== undefined);
      for (const { entry, text } of parts) this.pushEntryData(entry, Buffer.from(text, 'utf8'));
    }
    this.#sheets = part + 1;
    this.#widths = new Int32Array(this.#headers.length);
    this.#writer.measure = this.#widths;
    this.#measuring = true;
    const writer = this.#writer;
    writer.startRow(1);
    for (const [index, header] of this.#headers.entries()) writer.textString(index, header, XlsxStyle.header);
    writer.endRow();
    if (this.#measureRows === 0) this.#fixWidths(xlsxSheetEntry(part));
    return xlsxSheetEntry(part);
  }

  protected override writeRow(row: CopyTextRow, rowInPart: number): void {
    this.#writeRow(this.#writer, row, rowInPart + 2);
    if (this.#measuring && (rowInPart + 1 >= this.#measureRows || this.output.size >= MAX_MEASURED_BYTES)) this.#fixWidths(this.entry);
  }

  protected override canEmit(): boolean {
    return !this.#measuring;
  }

  protected override endPart(): void {
    if (this.#measuring) this.#fixWidths(this.entry);
    const rows = this.rowsPerPart[this.rowsPerPart.length - 1]! + 1;
    this.output.string(xlsxSheetEnd(this.#headers.length, rows));
  }

  protected override endParts(): void {
    if (this.#sheets !== this.#sheetNames.length) {
      throw new Error(`The export wrote ${this.#sheets} sheets but was planned with ${this.#sheetNames.length}`);
    }
    const table = this.#writer.sharedStrings;
    if (table !== undefined) for (const piece of table.part()) this.pushEntryData(XLSX_SHARED_STRINGS_ENTRY, piece);
  }

  /** Sends the sheet's start with the widths measured so far, then the rows held back. */
  #fixWidths(entry: string): void {
    this.#measuring = false;
    this.#writer.measure = undefined;
    const held = this.output.take();
    this.pushEntryData(entry, Buffer.from(xlsxSheetStart(Array.from(this.#widths)), 'utf8'));
    for (const piece of held) this.pushEntryData(entry, piece);
  }
}

/** Creates an {@link XlsxSheetsStage}. */
export function createXlsxSheetsStage(options: XlsxSheetsOptions): XlsxSheetsStage {
  return new XlsxSheetsStage(options);
}
