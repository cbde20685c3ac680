import type { ByteOutput } from './byte-output.js';
import type { CopyTextRow } from './copy-text.js';

/**
 * The CSV rules every report shares, as pure functions: RFC 4180 quoting with CRLF record ends,
 * line breaks inside cells normalised to LF, and a guard against formula injection.
 */

/** How a cell's value is treated by {@link formatCell}. */
export type CellKind =
  /** Identifiers and counts: written as they are. */
  | 'numeric'
  /** Values this program produced (timestamps, durations, booleans): written as they are, quoted if needed. */
  | 'generated'
  /** Free text from users or the database: line breaks normalised and guarded against formulas. */
  | 'text'
  /** Phone numbers: left alone when they look like one, otherwise treated as free text. */
  | 'phone';

/** Options of {@link formatCell}, resolved. */
export interface CsvCellOptions {
  /** Prefix a `'` to free-text cells that a spreadsheet would run as a formula. */
  readonly formulaGuard: boolean;
}

/** A record separator; every record, the last included, ends with it. */
export const RECORD_END = '\r\n';

/** The UTF-8 byte order mark that makes spreadsheets read the file as UTF-8. */
export const UTF8_BOM = '\uFEFF';

const PLAIN_PHONE_NUMBER = /^\+?[0-9]([0-9 ().-]*[0-9])?$/;
const NEEDS_QUOTES = /[",\r\n]|^ | $/;
const CARRIAGE_RETURNS = /\r\n?/g;

/** Turns CRLF and lone CR into LF: spreadsheets show a CR inside a cell as a box. */
export function normalizeLineBreaks(value: string): string {
  return value.includes('\r') ? value.replace(CARRIAGE_RETURNS, '\n') : value;
}

/** True when a spreadsheet could read the value as a formula: it starts with `=`, `+`, `-`, `@`, TAB, CR or LF. */
export function startsLikeFormula(value: string): boolean {
  switch (value.charCodeAt(0)) {
    case 0x3d: // =
    case 0x2b: // +
    case 0x2d: // -
    case 0x40: // @
    case 0x09: // TAB
    case 0x0d: // CR
    case 0x0a: // LF
      return true;
    default:
      return false;
  }
}

/** True for values such as `+57 300 123 4567` or `(601) 555-0100`, which the formula guard leaves alone. */
export function isPlainPhoneNumber(value: string): boolean {
  return PLAIN_PHONE_NUMBER.test(value);
}

/** Quotes a field when it holds a comma, a double quote, CR or LF, or starts or ends with a space. */
export function quoteField(value: string): string {
  if (!NEEDS_QUOTES.test(value)) return value;
  return `"${value.includes('"') ? value.replaceAll('"', '""') : value}"`;
}

/** Formats one cell; `null` (SQL NULL) and the empty string both give an empty field. */
export function formatCell(value: string | null, kind: CellKind, options: CsvCellOptions): string {
  if (value === null || value.length === 0) return '';
  switch (kind) {
    case 'numeric':
    case 'generated':
      return quoteField(value);
    case 'phone':
      if (isPlainPhoneNumber(value)) return value;
      return formatText(value, options);
    case 'text':
      return formatText(value, options);
  }
}

function formatText(value: string, options: CsvCellOptions): string {
  const normalized = normalizeLineBreaks(value);
  return quoteField(options.formulaGuard && startsLikeFormula(normalized) ? `'${normalized}` : normalized);
}

/** Joins already formatted cells into one record, CRLF included. */
export function formatRecord(cells: readonly string[]): string {
  return cells.join(',') + RECORD_END;
}

/** The header record: header names are ours, so they only need quoting, never guarding. */
export function formatHeader(names: readonly string[]): string {
  return formatRecord(names.map(quoteField));
}

// The same rules on UTF-8 bytes, for the export's hot path (transforms/csv-parts.ts). Every byte
// they look at is ASCII, which never occurs inside a multi-byte UTF-8 sequence, so they work on
// bytes without decoding. test/csv-bytes.test.ts proves they agree with the string functions above.

/** Bit of {@link scanCsvValue}: the value holds a `"` (to double). */
export const HAS_QUOTE = 1;
/** Bit of {@link scanCsvValue}: the value holds `,`, `"`, CR or LF (to quote). */
export const HAS_SPECIAL = 2;
/** Bit of {@link scanCsvValue}: the value holds a CR (to normalise in text). */
export const HAS_CR = 4;

/** All bits {@link scanCsvValue} reports. */
export const CSV_BITS = HAS_QUOTE | HAS_SPECIAL | HAS_CR;

/** What {@link scanCsvValue} reports for each byte (0: nothing); shared with the COPY row scanner. */
export const CSV_BYTE_FLAGS: Uint8Array = (() => {
  const flags = new Uint8Array(256);
  flags[0x22] = HAS_QUOTE | HAS_SPECIAL; // "
  flags[0x2c] = HAS_SPECIAL; // ,
  flags[0x0d] = HAS_SPECIAL | HAS_CR; // CR
  flags[0x0a] = HAS_SPECIAL; // LF
  return flags;
})();

/** The first bytes {@link startsLikeFormula} guards against: `=`, `+`, `-`, `@`, TAB, CR, LF. */
const FORMULA_START: Uint8Array = (() => {
  const starts = new Uint8Array(256);
  for (const code of [0x3d, 0x2b, 0x2d, 0x40, 0x09, 0x0d, 0x0a]) starts[code] = 1;
  return starts;
})();

/** From this many bytes, a value written unchanged from shareable input is shared, not copied. */
const SHARE_AT = 32 * 1024;

const SPACE = 0x20;
const DQUOTE = 0x22;
const APOSTROPHE = 0x27;
const CR = 0x0d;
const LF = 0x0a;

/** The {@link HAS_QUOTE} / {@link HAS_SPECIAL} / {@link HAS_CR} bits of the bytes `src[start..end)`. */
export function scanCsvValue(src: Uint8Array, start: number, end: number): number {
  let flags = 0;
  for (let i = start; i < end; i++) flags |= CSV_BYTE_FLAGS[src[i]!]!;
  return flags;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** {@link isPlainPhoneNumber} on the UTF-8 bytes `src[start..end)`. */
export function isPlainPhoneNumberBytes(src: Uint8Array, start: number, end: number): boolean {
  let i = start;
  if (i < end && src[i] === 0x2b) i += 1; // +
  if (i >= end || !isDigit(src[i]!) || !isDigit(src[end - 1]!)) return false;
  for (let j = i + 1; j < end - 1; j++) {
    const code = src[j]!;
    // [0-9 ().-]
    if (!isDigit(code) && code !== SPACE && code !== 0x28 && code !== 0x29 && code !== 0x2e && code !== 0x2d) return false;
  }
  return true;
}

/**
 * Appends the cell {@link formatCell} makes of the value whose UTF-8 bytes are `src[start..end)`
 * (an empty range is the empty field; SQL NULL is the caller's: it writes nothing).
 * @param flags the value's {@link scanCsvValue} bits, when the caller already has them.
 * @param shareable `src` is never written again: a large value written unchanged may be shared
 * with the output rather than copied (see `ByteOutput.share`).
 */
export function appendCsvField(
  out: ByteOutput,
  src: Buffer,
  start: number,
  end: number,
  kind: CellKind,
  options: CsvCellOptions,
  flags: number = scanCsvValue(src, start, end),
  shareable = false,
): void {
  if (start >= end) return;
  let text = kind === 'text';
  if (kind === 'phone') {
    if (isPlainPhoneNumberBytes(src, start, end)) {
      out.bytes(src, start, end);
      return;
    }
    text = true;
  }
  const first = src[start]!;
  // After CR normalisation the first byte is the same or (CR) becomes LF: both guarded alike.
  const guard = text && options.formulaGuard && FORMULA_START[first] === 1;
  // A guarded value starts with `'`, never a space; a CR at the end (LF once normalised) is special anyway.
  const quote = (flags & HAS_SPECIAL) !== 0 || first === SPACE || src[end - 1] === SPACE;
  const normalise = text && (flags & HAS_CR) !== 0;
  if (!quote && !guard && !normalise) {
    if (end - start >= SHARE_AT && shareable) out.share(src, start, end);
    else out.bytes(src, start, end);
    return;
  }
  // Worst case: every byte a doubled quote, plus the quotes and the guard.
  out.ensure(2 * (end - start) + 3);
  const buf = out.buf;
  let pos = out.pos;
  if (quote) buf[pos++] = DQUOTE;
  if (guard) buf[pos++] = APOSTROPHE;
  if ((flags & (HAS_QUOTE | HAS_CR)) === 0) {
    out.pos = pos;
    out.bytes(src, start, end);
    pos = out.pos;
  } else {
    for (let i = start; i < end; i++) {
      const code = src[i]!;
      if (code === DQUOTE) {
        buf[pos++] = DQUOTE;
        buf[pos++] = DQUOTE;
      } else if (code === CR && normalise) {
        buf[pos++] = LF;
        if (i + 1 < end && src[i + 1] === LF) i += 1;
      } else {
        buf[pos++] = code;
      }
    }
  }
  if (quote) buf[pos++] = DQUOTE;
  out.pos = pos;
}

/**
 * Appends the cell {@link formatCell} makes of value `c` of a COPY text row: NULL writes nothing, a
 * value without escapes goes from the row's bytes, an escaped one is decoded first.
 */
export function appendCopyValue(out: ByteOutput, row: CopyTextRow, c: number, kind: CellKind, options: CsvCellOptions): void {
  if (!row.escaped(c)) {
    // The row's bytes are COPY input, never written again: large values are shared.
    appendCsvField(out, row.src, row.starts[c]!, row.ends[c]!, kind, options, row.csvFlags(c), true);
  } else if (!row.isNull(c)) {
    // Decoded first: decoding may choose another buffer. A huge value's own buffer may be shared.
    const length = row.unescapeInto(c);
    appendCsvField(out, row.decoded, 0, length, kind, options, undefined, row.decodedIsOwn);
  }
}
