import { ByteOutput } from './byte-output.js';

/**
 * The XLSX (SpreadsheetML) rules every report shares, as pure functions on bytes: typed cells with
 * inline strings or a bounded shared-strings table (nothing grows with the export), the package
 * parts a workbook needs, and Excel's own limits. Text cells are always string cells: no formula is ever
 * written, so the CSV's formula guard (`'`) is neither needed nor added here.
 */

/** The content type of an `.xlsx` workbook. */
export const XLSX_CONTENT_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** The most characters (UTF-16 units) Excel keeps in one cell. */
export const XLSX_MAX_CELL_CHARS = 32_767;

/** The most rows one sheet holds, the header included. */
export const XLSX_MAX_SHEET_ROWS = 1_048_576;

/** What a cell cut at {@link XLSX_MAX_CELL_CHARS} ends with (counted within the limit). */
export const XLSX_TRUNCATION_MARKER = '…[truncated]';

/** Cell styles, as indexes into styles.xml's `cellXfs` ({@link XLSX_STYLES}). */
export const XlsxStyle = {
  default: 0,
  header: 1,
  wrapped: 2,
  dateTime: 3,
  twoDecimals: 4,
} as const;

/** What {@link appendXlsxText} and friends tell about the cells they wrote. */
export interface XlsxCellStats {
  /** Cells cut at {@link XLSX_MAX_CELL_CHARS}, so far. */
  truncatedCells: number;
}

// Byte classes of text content.
const CONTROL = 1; // C0 controls XML 1.0 cannot hold (all but TAB, LF, CR)
const CR_BIT = 2;
const ENTITY = 4; // & < >
const UNDERSCORE = 8; // may start an _xHHHH_ escape that must itself be escaped
const LF_BIT = 16;
const EF = 32; // may start U+FFFE or U+FFFF, which XML 1.0 cannot hold
const SLOW = CONTROL | CR_BIT | ENTITY | UNDERSCORE | EF;

const XML_TEXT_FLAGS: Uint8Array = (() => {
  const flags = new Uint8Array(256);
  for (let code = 0; code < 0x20; code++) flags[code] = CONTROL;
  flags[0x09] = 0;
  flags[0x0a] = LF_BIT;
  flags[0x0d] = CR_BIT | LF_BIT;
  flags[0x26] = ENTITY;
  flags[0x3c] = ENTITY;
  flags[0x3e] = ENTITY;
  flags[0x5f] = UNDERSCORE;
  flags[0xef] = EF;
  return flags;
})();

const LF = 0x0a;
const CR = 0x0d;

/** The bits of {@link XML_TEXT_FLAGS} over `src[start..end)`. */
function scanXmlText(src: Uint8Array, start: number, end: number): number {
  let flags = 0;
  for (let i = start; i < end; i++) flags |= XML_TEXT_FLAGS[src[i]!]!;
  return flags;
}

function isHex(code: number | undefined): boolean {
  return code !== undefined && ((code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66));
}

/** True when `src[i..]` reads `_xHHHH_`, which readers would decode: its `_` must be escaped. */
function startsEscapeSequence(src: Uint8Array, i: number, end: number): boolean {
  return (
    i + 6 < end &&
    (src[i + 1] === 0x78 || src[i + 1] === 0x58) &&
    isHex(src[i + 2]) &&
    isHex(src[i + 3]) &&
    isHex(src[i + 4]) &&
    isHex(src[i + 5]) &&
    src[i + 6] === 0x5f
  );
}

/** UTF-16 units of the UTF-8 character whose first byte is `lead` (0 for a continuation byte). */
function utf16Units(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead < 0xc0) return 0;
  return lead >= 0xf0 ? 2 : 1;
}

/** Characters (UTF-16 units) of `src[start..end)` as a cell holds it: CRLF counts as one line break. */
export function xlsxTextUnits(src: Uint8Array, start: number, end: number): number {
  let units = 0;
  for (let i = start; i < end; i++) {
    const code = src[i]!;
    if (code === CR && src[i + 1] === LF && i + 1 < end) continue;
    units += utf16Units(code);
  }
  return units;
}

/** Characters of the longest line of `src[start..end)`: what a column's width is measured by. */
export function xlsxDisplayWidth(src: Uint8Array, start: number, end: number): number {
  let widest = 0;
  let line = 0;
  for (let i = start; i < end; i++) {
    const code = src[i]!;
    if (code === LF || code === CR) {
      if (line > widest) widest = line;
      line = 0;
    } else {
      line += utf16Units(code);
    }
  }
  return line > widest ? line : widest;
}

const HEX_DIGITS = Buffer.from('0123456789ABCDEF');
const AMP = Buffer.from('&amp;');
const LT = Buffer.from('&lt;');
const GT = Buffer.from('&gt;');
const MARKER = Buffer.from(XLSX_TRUNCATION_MARKER, 'utf8');
const MARKER_UNITS = XLSX_TRUNCATION_MARKER.length;

function appendCodeEscape(out: ByteOutput, code: number): void {
  // Excel's own escape for characters XML cannot hold: _xHHHH_ (readers decode it back).
  out.ensure(7);
  const buf = out.buf;
  let pos = out.pos;
  buf[pos++] = 0x5f;
  buf[pos++] = 0x78;
  buf[pos++] = HEX_DIGITS[(code >> 12) & 15]!;
  buf[pos++] = HEX_DIGITS[(code >> 8) & 15]!;
  buf[pos++] = HEX_DIGITS[(code >> 4) & 15]!;
  buf[pos++] = HEX_DIGITS[code & 15]!;
  buf[pos++] = 0x5f;
  out.pos = pos;
}

/**
 * Appends `src[start..end)` as XML text content: `&`, `<`, `>` as entities, CR and CRLF as LF (the
 * CSV's rule), characters XML 1.0 cannot hold (C0 controls but TAB, LF, CR; U+FFFE, U+FFFF) as
 * `_xHHHH_` the way Excel writes them, and a literal `_xHHHH_` with its `_` escaped (`_x005F_`) so
 * readers do not decode it. Text over `maxUnits` characters is cut, ending with
 * {@link XLSX_TRUNCATION_MARKER}. Returns whether it was cut.
 */
export function appendXmlText(out: ByteOutput, src: Uint8Array, start: number, end: number, flags: number, maxUnits: number): boolean {
  // Only a value of more bytes than the limit can have more characters than it.
  const cut = end - start > maxUnits && xlsxTextUnits(src, start, end) > maxUnits;
  if ((flags & SLOW) === 0 && !cut) {
    out.bytes(src as Buffer, start, end);
    return false;
  }
  const budget = cut ? maxUnits - MARKER_UNITS : Number.POSITIVE_INFINITY;
  let units = 0;
  let i = start;
  while (i < end) {
    const code = src[i]!;
    const width = utf16Units(code);
    if (width > 0 && units + width > budget) break;
    units += width;
    const kind = XML_TEXT_FLAGS[code]!;
    if ((kind & SLOW) === 0) {
      out.byte(code);
    } else if (code === CR) {
      out.byte(LF);
      if (i + 1 < end && src[i + 1] === LF) i += 1;
    } else if (kind === CONTROL) {
      appendCodeEscape(out, code);
    } else if (code === 0x26) {
      out.bytes(AMP, 0, AMP.length);
    } else if (code === 0x3c) {
      out.bytes(LT, 0, LT.length);
    } else if (code === 0x3e) {
      out.bytes(GT, 0, GT.length);
    } else if (code === 0x5f) {
      if (startsEscapeSequence(src, i, end)) appendCodeEscape(out, 0x5f);
      else out.byte(code);
    } else if (code === 0xef && src[i + 1] === 0xbf && (src[i + 2] === 0xbe || src[i + 2] === 0xbf) && i + 2 < end) {
      appendCodeEscape(out, src[i + 2] === 0xbe ? 0xfffe : 0xffff);
      i += 2;
    } else {
      out.byte(code);
    }
    i += 1;
  }
  if (cut) out.bytes(MARKER, 0, MARKER.length);
  return cut;
}

/** Column letters of column `index` (from 0): `A`, ..., `Z`, `AA`, ... */
export function xlsxColumnName(index: number): string {
  if (!Number.isSafeInteger(index) || index < 0 || index >= 16_384) {
    throw new TypeError(`Expected \`index\` to be a column index from 0 to 16383, got ${index}`);
  }
  let name = '';
  let n = index + 1;
  while (n > 0) {
    const rest = (n - 1) % 26;
    name = String.fromCharCode(0x41 + rest) + name;
    n = Math.floor((n - 1) / 26);
  }
  return name;
}

/** The shared-strings part's zip entry (written after the sheets: it is complete only then). */
export const XLSX_SHARED_STRINGS_ENTRY = 'xl/sharedStrings.xml';

/** Bounds of an {@link XlsxSharedStrings} table. */
export interface XlsxSharedStringsLimits {
  /** At most this many strings; default 32,768. */
  readonly maxStrings?: number;
  /** At most this many bytes of `<si>` elements; default 2 MiB. */
  readonly maxBytes?: number;
  /** Longer texts (in UTF-8 bytes) are never shared; default 256. */
  readonly maxStringBytes?: number;
}

const SI_START = Buffer.from('<si><t>');
const SI_START_PRESERVE = Buffer.from('<si><t xml:space="preserve">');
const SI_END = Buffer.from('</t></si>');

/**
 * A bounded shared-strings table: a text cell that refers to it is `<v>index</v>` instead of its
 * inline text, a quarter of a conversation row's bytes (names, e-mails and statuses repeat across
 * messages and chats). Strings are added first come, first served while the table has room (by
 * count and bytes); once it is full, new strings stay inline, so memory never grows with the export.
 */
export class XlsxSharedStrings {
  readonly maxStrings: number;
  readonly maxBytes: number;
  readonly maxStringBytes: number;
  // The index is keyed by the text's bytes, not by a string of them: a conversation sheet looks up
  // about 1.5 million texts per million rows, and a string per lookup was a tenth of its CPU.
  /** The texts' own bytes, one after the other (escaping happens in {@link #items}). */
  #keys = Buffer.alloc(16 * 1024);
  #keysUsed = 0;
  /** Per string: where its bytes start in {@link #keys}, how many there are, and their hash. */
  #keyStarts = new Int32Array(256);
  #keyLengths = new Int32Array(256);
  #keyHashes = new Int32Array(256);
  /** Open addressing with linear probing: string index + 1 per slot, 0 when free; a power of two long. */
  #slots = new Int32Array(512);
  #count = 0;
  readonly #items = new ByteOutput(64 * 1024);

  constructor(limits: XlsxSharedStringsLimits = {}) {
    this.maxStrings = positiveLimit('maxStrings', limits.maxStrings ?? 32_768);
    this.maxBytes = positiveLimit('maxBytes', limits.maxBytes ?? 2 * 1024 * 1024);
    this.maxStringBytes = positiveLimit('maxStringBytes', limits.maxStringBytes ?? 256);
  }

  /** Strings in the table. */
  get size(): number {
    return this.#count;
  }

  /**
   * The index of the text `src[start..end)` (its XML flags from the caller's scan), added when new
   * and the table has room; -1 when it is not shared (too long, or the table is full).
   */
  indexOf(src: Uint8Array, start: number, end: number, flags: number): number {
    const length = end - start;
    if (length > this.maxStringBytes || length < 1) return -1;
    // FNV-1a over the bytes.
    let hash = 0x811c9dc5;
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ src[i]!, 0x01000193);
    const slots = this.#slots;
    const mask = slots.length - 1;
    const keys = this.#keys;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = slots[slot]!;
      if (entry === 0) break;
      const index = entry - 1;
      if (this.#keyHashes[index] !== hash || this.#keyLengths[index] !== length) continue;
      const at = this.#keyStarts[index]! - start;
      let same = true;
      for (let i = start; same && i < end; i++) same = keys[at + i] === src[i];
      if (same) return index;
    }
    // An escape takes at most 7 bytes per byte of text.
    if (this.#count >= this.maxStrings || this.#items.size + length * 7 + SI_START_PRESERVE.length + SI_END.length > this.maxBytes) return -1;
    const index = this.#add(src, start, end, hash);
    const items = this.#items;
    const first = src[start]!;
    const last = src[end - 1]!;
    const space = first === 0x20 || first === 0x09 || first === LF || first === CR || last === 0x20 || last === 0x09 || last === LF || last === CR;
    const head = space ? SI_START_PRESERVE : SI_START;
    items.bytes(head, 0, head.length);
    appendXmlText(items, src, start, end, flags, XLSX_MAX_CELL_CHARS);
    items.bytes(SI_END, 0, SI_END.length);
    return index;
  }

  /** The `xl/sharedStrings.xml` part, as pieces; call once, after the last row. */
  part(): Buffer[] {
    const head = Buffer.from(`${XML_HEAD}<sst xmlns="${MAIN_NS}" uniqueCount="${this.#count}">`, 'utf8');
    this.#count = 0;
    this.#keysUsed = 0;
    this.#slots.fill(0);
    return [head, ...this.#items.take(), Buffer.from('</sst>', 'utf8')];
  }

  #add(src: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const index = this.#count;
    if (index === this.#keyStarts.length) {
      this.#keyStarts = grown(this.#keyStarts);
      this.#keyLengths = grown(this.#keyLengths);
      this.#keyHashes = grown(this.#keyHashes);
    }
    if (this.#keysUsed + length > this.#keys.length) {
      const keys = Buffer.alloc(Math.max(this.#keys.length * 2, this.#keysUsed + length));
      this.#keys.copy(keys, 0, 0, this.#keysUsed);
      this.#keys = keys;
    }
    const keys = this.#keys;
    const at = this.#keysUsed;
    for (let i = 0; i < length; i++) keys[at + i] = src[start + i]!;
    this.#keysUsed = at + length;
    this.#keyStarts[index] = at;
    this.#keyLengths[index] = length;
    this.#keyHashes[index] = hash;
    this.#count = index + 1;
    // At most half full, so probes stay short.
    if (this.#count * 2 > this.#slots.length) this.#rehash(this.#slots.length * 2);
    else this.#place(index);
    return index;
  }

  #place(index: number): void {
    const slots = this.#slots;
    const mask = slots.length - 1;
    let slot = this.#keyHashes[index]! & mask;
    while (slots[slot] !== 0) slot = (slot + 1) & mask;
    slots[slot] = index + 1;
  }

  #rehash(size: number): void {
    this.#slots = new Int32Array(size);
    for (let index = 0; index < this.#count; index++) this.#place(index);
  }
}

/** A copy of `array` twice as long. */
function grown(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const copy = new Int32Array(array.length * 2);
  copy.set(array);
  return copy;
}

function positiveLimit(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`Expected \`${name}\` to be a whole number from 1 and up, got ${value}`);
  return value;
}

const ROW_START = Buffer.from('<row r="');
const TAG_END = Buffer.from('">');
const ROW_END = Buffer.from('</row>');
const INLINE_START = Buffer.from(' t="inlineStr"><is><t>');
const INLINE_START_PRESERVE = Buffer.from(' t="inlineStr"><is><t xml:space="preserve">');
const INLINE_END = Buffer.from('</t></is></c>');
const VALUE_START = Buffer.from('><v>');
const VALUE_END = Buffer.from('</v></c>');
const BOOLEAN_TRUE = Buffer.from(' t="b"><v>1</v></c>');
const SHARED_START = Buffer.from(' t="s"><v>');
const CELL_REF_START = Buffer.from('<c r="');

/** Kept cells of consecutive columns as one piece of bytes, for {@link XlsxRowWriter.repeatCells}. */
interface KeptRun {
  readonly last: number;
  readonly version: number;
  readonly digitCount: number;
  readonly bytes: Buffer;
  readonly length: number;
  /** Where each cell's row digits go in {@link bytes}. */
  readonly slots: Int32Array;
  /** Cells of the run that were cut at the cell limit. */
  readonly truncated: number;
}
const BOOLEAN_FALSE = Buffer.from(' t="b"><v>0</v></c>');

/**
 * Writes the cells of one row: the cell references (`A7`, `B7`, ...) come from the column letters
 * and the row number, which is written once per row, not per cell.
 */
export class XlsxRowWriter {
  readonly #letters: Buffer[];
  readonly #rowDigits = Buffer.alloc(8);
  #rowDigitsLength = 0;
  readonly #dates: ({ src: Buffer; serial: Buffer; length: number } | undefined)[] = [];
  readonly #kept: ({ tail: Buffer; length: number; truncated: boolean } | undefined)[] = [];
  readonly #lastShared: ({ bytes: Buffer; length: number; index: number } | undefined)[] = [];
  readonly #runs: (KeptRun | undefined)[] = [];
  /** Changes whenever a kept cell does, so a run built from older ones is built again. */
  #keptVersion = 0;
  #key = Buffer.alloc(32);
  #keyLength = -1;
  #markTruncated = 0;
  /** Cells cut at the limit so far, over every row this writer wrote. */
  truncatedCells = 0;
  /**
   * When set, every cell written raises its column's entry to the characters it shows (its longest
   * line): column widths from the first rows. Left unset for the rest, which costs nothing.
   */
  measure: Int32Array | undefined;
  /** Where {@link sharedText} cells go; unset, they are inline strings like every other. */
  sharedStrings: XlsxSharedStrings | undefined;

  constructor(
    readonly out: ByteOutput,
    columns: number,
  ) {
    this.#letters = Array.from({ length: columns }, (_, index) => Buffer.from(xlsxColumnName(index)));
  }

  /** Starts row `rowNumber` (from 1). */
  startRow(rowNumber: number): void {
    if (!Number.isSafeInteger(rowNumber) || rowNumber < 1 || rowNumber > XLSX_MAX_SHEET_ROWS) {
      throw new RangeError(`A sheet holds rows 1 to ${XLSX_MAX_SHEET_ROWS}, not row ${rowNumber}`);
    }
    let length = 0;
    for (let n = rowNumber; n > 0; n = Math.floor(n / 10)) length += 1;
    for (let n = rowNumber, i = length - 1; i >= 0; n = Math.floor(n / 10), i--) this.#rowDigits[i] = 0x30 + (n % 10);
    this.#rowDigitsLength = length;
    // A sheet's first row starts a new group: no cell of another sheet is ever repeated.
    if (rowNumber === 1) this.#keyLength = -1;
    this.#fragment(ROW_START);
    this.out.bytes(this.#rowDigits, 0, length);
    this.#fragment(TAG_END);
  }

  /** Ends the row started last. */
  endRow(): void {
    this.#fragment(ROW_END);
  }

  /**
   * A string cell of `src[start..end)`, wrapped when it holds a line break, with `xml:space` kept
   * when it starts or ends with white space. Empty text writes no cell (as the CSV's empty field).
   * @param plain the caller knows the text holds nothing XML must escape and no CR or LF.
   */
  text(column: number, src: Uint8Array, start: number, end: number, style: number = XlsxStyle.default, plain = false): void {
    if (start >= end) return;
    if (this.measure !== undefined) this.#widen(column, xlsxDisplayWidth(src, start, end));
    // `plain`: the caller's own scan found nothing to escape and no line break (COPY rows do).
    const flags = plain ? 0 : scanXmlText(src, start, end);
    this.#cellStart(column, (flags & LF_BIT) !== 0 && style === XlsxStyle.default ? XlsxStyle.wrapped : style);
    const first = src[start]!;
    const last = src[end - 1]!;
    const space = first === 0x20 || first === 0x09 || first === LF || first === CR || last === 0x20 || last === 0x09 || last === LF || last === CR;
    this.#fragment(space ? INLINE_START_PRESERVE : INLINE_START);
    if (appendXmlText(this.out, src, start, end, flags, XLSX_MAX_CELL_CHARS)) this.truncatedCells += 1;
    this.#fragment(INLINE_END);
  }

  /**
   * {@link text}, as a reference to {@link sharedStrings} when the table is set and holds (or takes)
   * the text; inline otherwise. For texts that repeat (names, statuses), not for message bodies,
   * which would only fill the table.
   */
  sharedText(column: number, src: Uint8Array, start: number, end: number, plain = false): void {
    if (start >= end) return;
    const table = this.sharedStrings;
    if (table === undefined || end - start > table.maxStringBytes) {
      this.text(column, src, start, end, XlsxStyle.default, plain);
      return;
    }
    const flags = plain ? 0 : scanXmlText(src, start, end);
    // Most texts equal the column's previous one (a message type, a status): a compare, no lookup.
    let last = this.#lastShared[column];
    if (last === undefined) {
      last = { bytes: Buffer.alloc(table.maxStringBytes), length: -1, index: -1 };
      this.#lastShared[column] = last;
    }
    let index: number;
    const textLength = end - start;
    let same = textLength === last.length;
    for (let i = 0; same && i < textLength; i++) same = last.bytes[i] === src[start + i];
    if (same) {
      index = last.index;
    } else {
      index = table.indexOf(src, start, end, flags);
      if (index >= 0) {
        // A loop, not set(subarray()): no view object per text.
        for (let i = 0; i < textLength; i++) last.bytes[i] = src[start + i]!;
        last.length = textLength;
        last.index = index;
      }
    }
    if (index < 0) {
      this.text(column, src, start, end, XlsxStyle.default, plain);
      return;
    }
    if (this.measure !== undefined) this.#widen(column, xlsxDisplayWidth(src, start, end));
    this.#cellStart(column, (flags & LF_BIT) !== 0 ? XlsxStyle.wrapped : XlsxStyle.default);
    this.#fragment(SHARED_START);
    const out = this.out;
    out.ensure(16);
    let length = 0;
    for (let n = index; n > 0 || length === 0; n = Math.floor(n / 10)) length += 1;
    for (let n = index, i = length - 1; i >= 0; n = Math.floor(n / 10), i--) out.buf[out.pos + i] = 0x30 + (n % 10);
    out.pos += length;
    this.#fragment(VALUE_END);
  }

  /** {@link text} of a string. */
  textString(column: number, value: string | null, style: number = XlsxStyle.default): void {
    if (value === null || value.length === 0) return;
    const bytes = Buffer.from(value, 'utf8');
    this.text(column, bytes, 0, bytes.length, style);
  }

  /**
   * A number cell whose value is the ASCII number text `src[start..end)`, already known to be a
   * number a double holds exactly (see {@link isExactIntegerText}).
   */
  number(column: number, src: Uint8Array, start: number, end: number, style: number = XlsxStyle.default): void {
    if (this.measure !== undefined) this.#widen(column, end - start);
    this.#cellStart(column, style);
    this.#fragment(VALUE_START);
    this.out.bytes(src as Buffer, start, end);
    this.#fragment(VALUE_END);
  }

  /** An integer cell when the text is an integer a double holds exactly, else a string cell of it. */
  integerOrText(column: number, src: Uint8Array, start: number, end: number): void {
    if (start >= end) return;
    if (isExactIntegerText(src, start, end)) this.number(column, src, start, end);
    else this.text(column, src, start, end);
  }

  /** A boolean cell. */
  boolean(column: number, value: boolean): void {
    if (this.measure !== undefined) this.#widen(column, value ? 4 : 5);
    this.#cellStart(column, XlsxStyle.default);
    this.#fragment(value ? BOOLEAN_TRUE : BOOLEAN_FALSE);
  }

  /**
   * A date-time cell (Excel serial day number, {@link XlsxStyle.dateTime}) of the text
   * `YYYY-MM-DD HH:MM:SS` in `src[start..start+19)`; returns false and writes nothing when the text
   * is no such date-time or Excel cannot show it (before 1900-03-01, where Excel's calendar is off
   * by its 1900 leap day, or after 9999-12-31).
   */
  dateTime(column: number, src: Uint8Array, start: number): boolean {
    // A chat's own timestamps repeat on every row of the chat: the last value of each column is
    // kept with its serial, so most cells are a compare and a copy.
    let cached = this.#dates[column];
    if (cached === undefined) {
      cached = { src: Buffer.alloc(19), serial: Buffer.alloc(32), length: -1 };
      this.#dates[column] = cached;
    }
    let same = cached.length >= 0;
    for (let i = 0; same && i < 19; i++) same = cached.src[i] === src[start + i];
    if (!same) {
      const serial = excelSerialParts(src, start);
      if (serial === undefined) return false;
      cached.src.set(src.subarray(start, start + 19));
      cached.length = writeSerial(cached.serial, serial.days, serial.seconds);
    }
    if (this.measure !== undefined) this.#widen(column, 19);
    this.#cellStart(column, XlsxStyle.dateTime);
    this.#fragment(VALUE_START);
    this.out.bytes(cached.serial, 0, cached.length);
    this.#fragment(VALUE_END);
    return true;
  }

  /**
   * Starts a string cell whose text the caller appends to {@link out} itself: ASCII without XML
   * specials (generated text such as durations), of about `width` characters. {@link endText} ends it.
   */
  startText(column: number, width: number): void {
    if (this.measure !== undefined) this.#widen(column, width);
    this.#cellStart(column, XlsxStyle.default);
    this.#fragment(INLINE_START);
  }

  /** Ends the cell {@link startText} started. */
  endText(): void {
    this.#fragment(INLINE_END);
  }

  /**
   * True when `src[start..end)` equals the key the previous row of this sheet gave (a chat's id),
   * so that cells kept with {@link keepCell} may be written again with {@link repeatCell}; else
   * the key is remembered for the next row and false returned.
   */
  sameKey(src: Uint8Array, start: number, end: number): boolean {
    const length = end - start;
    const key = this.#key;
    if (length === this.#keyLength) {
      let same = true;
      for (let i = 0; same && i < length; i++) same = key[i] === src[start + i];
      if (same) return true;
    }
    if (length > key.length) this.#key = Buffer.alloc(length);
    const into = this.#key;
    for (let i = 0; i < length; i++) into[i] = src[start + i]!;
    this.#keyLength = length;
    return false;
  }

  /** Where the next cell starts, for {@link keepCell}. */
  cellMark(): number {
    this.#markTruncated = this.truncatedCells;
    return this.out.size;
  }

  /**
   * Keeps the cell of `column` written since `mark` (a {@link cellMark}) without its reference, or
   * that it wrote none, so that {@link repeatCell} writes it again in later rows. A cell over
   * `maxBytes` is not kept (memory stays a few KiB per column) and is written anew instead.
   */
  keepCell(column: number, mark: number, maxBytes = 4096): void {
    const written = this.out.size - mark;
    if (written > maxBytes) {
      this.#kept[column] = undefined;
      this.#keptVersion += 1;
      return;
    }
    // A cell's bytes sit together before `pos`: rows are never handed on or shared mid-cell.
    const tail = written === 0 ? 0 : written - (6 + this.#letters[column]!.length + this.#rowDigitsLength + 1);
    let kept = this.#kept[column];
    if (kept === undefined || kept.tail.length < tail) {
      kept = { tail: Buffer.alloc(Math.max(tail, 64)), length: 0, truncated: false };
      this.#kept[column] = kept;
    }
    this.out.buf.copy(kept.tail, 0, this.out.pos - tail, this.out.pos);
    kept.length = written === 0 ? -1 : tail;
    kept.truncated = this.truncatedCells > this.#markTruncated;
    this.#keptVersion += 1;
  }

  /**
   * Writes the cell {@link keepCell} kept for `column` again, with this row's reference; returns
   * false when there is none to repeat (the caller writes the cell itself).
   */
  repeatCell(column: number): boolean {
    const kept = this.#kept[column];
    if (kept === undefined) return false;
    if (kept.length < 0) return true;
    // Width and style are the kept cell's: same text, same sheet.
    this.#cellStart(column, XlsxStyle.default);
    this.out.bytes(kept.tail, 0, kept.length);
    if (kept.truncated) this.truncatedCells += 1;
    return true;
  }

  /**
   * {@link repeatCell} for every column from `first` to `last`; returns false and writes nothing
   * when one of them has no kept cell (the caller writes them one by one). The run's bytes are
   * built once per kept set and copied whole, with only each reference's row digits written anew:
   * repeated cells are most of a conversation sheet's bytes, too many for a loop per byte.
   */
  repeatCells(first: number, last: number): boolean {
    let run = this.#runs[first];
    if (run === undefined || run.last !== last || run.version !== this.#keptVersion || run.digitCount !== this.#rowDigitsLength) {
      run = this.#buildRun(first, last);
      if (run === undefined) return false;
      this.#runs[first] = run;
    }
    const out = this.out;
    out.ensure(run.length);
    const buf = out.buf;
    const at = out.pos;
    run.bytes.copy(buf, at, 0, run.length);
    const digits = this.#rowDigits;
    const digitCount = this.#rowDigitsLength;
    const slots = run.slots;
    for (let s = 0; s < slots.length; s++) {
      const slot = at + slots[s]!;
      for (let i = 0; i < digitCount; i++) buf[slot + i] = digits[i]!;
    }
    out.pos = at + run.length;
    this.truncatedCells += run.truncated;
    return true;
  }

  #buildRun(first: number, last: number): KeptRun | undefined {
    const kept = this.#kept;
    const letters = this.#letters;
    const digitCount = this.#rowDigitsLength;
    let length = 0;
    let cells = 0;
    for (let column = first; column <= last; column++) {
      const cell = kept[column];
      if (cell === undefined) return undefined;
      if (cell.length < 0) continue;
      length += 7 + letters[column]!.length + digitCount + cell.length;
      cells += 1;
    }
    // The previous run of these columns lends its buffers: one chat's run is much like the next.
    const previous = this.#runs[first];
    const bytes = previous !== undefined && previous.bytes.length >= length ? previous.bytes : Buffer.alloc(Math.max(length, 1024));
    const slots = previous !== undefined && previous.slots.length === cells ? previous.slots : new Int32Array(cells);
    let pos = 0;
    let slot = 0;
    let truncated = 0;
    for (let column = first; column <= last; column++) {
      const cell = kept[column]!;
      if (cell.length < 0) continue;
      pos += CELL_REF_START.copy(bytes, pos);
      pos += letters[column]!.copy(bytes, pos);
      slots[slot++] = pos;
      pos += digitCount;
      bytes[pos++] = 0x22;
      pos += cell.tail.copy(bytes, pos, 0, cell.length);
      if (cell.truncated) truncated += 1;
    }
    return { last, version: this.#keptVersion, digitCount, bytes, length, slots, truncated };
  }

  #widen(column: number, chars: number): void {
    const measure = this.measure!;
    if (chars > measure[column]!) measure[column] = chars;
  }

  /**
   * Writes `<c r="REF"` and a style when not the default; the caller closes the tag. The reference
   * is optional after a cell of the previous column, but exceljs reads cells without one wrongly.
   */
  #cellStart(column: number, style: number): void {
    const out = this.out;
    out.ensure(24);
    const buf = out.buf;
    let pos = out.pos;
    buf[pos++] = 0x3c; // <
    buf[pos++] = 0x63; // c
    {
      const letters = this.#letters[column]!;
      // r="
      buf[pos++] = 0x20;
      buf[pos++] = 0x72;
      buf[pos++] = 0x3d;
      buf[pos++] = 0x22;
      for (let i = 0; i < letters.length; i++) buf[pos++] = letters[i]!;
      for (let i = 0; i < this.#rowDigitsLength; i++) buf[pos++] = this.#rowDigits[i]!;
      buf[pos++] = 0x22;
    }
    if (style !== 0) {
      // s="N", N a single digit
      buf[pos++] = 0x20;
      buf[pos++] = 0x73;
      buf[pos++] = 0x3d;
      buf[pos++] = 0x22;
      buf[pos++] = 0x30 + style;
      buf[pos++] = 0x22;
    }
    out.pos = pos;
  }

  #fragment(bytes: Buffer): void {
    this.out.bytes(bytes, 0, bytes.length);
  }
}
const MAX_EXACT_DIGITS = Buffer.from('9007199254740992'); // 2^53: every integer up to it is a double exactly

/**
 * True when `src[start..end)` is integer text (an optional `-`, digits, no leading zero, not `-0`)
 * whose value a double holds exactly (at most 2^53 in magnitude), so a number cell shows it as
 * written; anything else stays text.
 */
export function isExactIntegerText(src: Uint8Array, start: number, end: number): boolean {
  let i = start;
  if (src[i] === 0x2d) i += 1;
  const digits = end - i;
  if (digits < 1 || digits > 16) return false;
  // A leading zero would be lost, and "-0" would lose its sign.
  if (src[i] === 0x30 && (digits > 1 || i > start)) return false;
  for (let j = i; j < end; j++) {
    const code = src[j]!;
    if (code < 0x30 || code > 0x39) return false;
  }
  if (digits < 16) return true;
  for (let j = 0; j < 16; j++) {
    const code = src[i + j]!;
    const limit = MAX_EXACT_DIGITS[j]!;
    if (code !== limit) return code < limit;
  }
  return true;
}

function twoDigits(src: Uint8Array, at: number): number {
  const a = src[at]! - 0x30;
  const b = src[at + 1]! - 0x30;
  if (a < 0 || a > 9 || b < 0 || b > 9) return -1;
  return a * 10 + b;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = month > 2 ? month - 3 : month + 9;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** 1899-12-30, Excel's day 0 (for dates from 1900-03-01 on). */
const EXCEL_EPOCH_DAYS = daysFromCivil(1899, 12, 30);
const FIRST_EXACT_DAY = daysFromCivil(1900, 3, 1) - EXCEL_EPOCH_DAYS;

/**
 * The Excel serial of `YYYY-MM-DD HH:MM:SS` at `src[start..start+19)` as whole days and seconds of
 * the day, or undefined when the text is not a valid date-time in 1900-03-01 .. 9999-12-31.
 */
export function excelSerialParts(src: Uint8Array, start: number): { days: number; seconds: number } | undefined {
  if (src.length < start + 19) return undefined;
  if (src[start + 4] !== 0x2d || src[start + 7] !== 0x2d || src[start + 10] !== 0x20 || src[start + 13] !== 0x3a || src[start + 16] !== 0x3a) {
    return undefined;
  }
  const century = twoDigits(src, start);
  const yy = twoDigits(src, start + 2);
  const month = twoDigits(src, start + 5);
  const day = twoDigits(src, start + 8);
  const hour = twoDigits(src, start + 11);
  const minute = twoDigits(src, start + 14);
  const second = twoDigits(src, start + 17);
  if (century < 0 || yy < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return undefined;
  }
  const year = century * 100 + yy;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  if (day > monthDays) return undefined;
  const days = daysFromCivil(year, month, day) - EXCEL_EPOCH_DAYS;
  if (days < FIRST_EXACT_DAY) return undefined;
  return { days, seconds: hour * 3600 + minute * 60 + second };
}

const SERIAL_FRACTION_DIGITS = 10;

/**
 * Appends `days + seconds / 86400` in decimal with at most ten fraction digits (8.6 microseconds:
 * every reader rounds it back to the exact second), without a string per cell.
 */
export function appendSerial(out: ByteOutput, days: number, seconds: number): void {
  out.ensure(24);
  out.pos = writeSerial(out.buf, days, seconds, out.pos);
}

/** Writes {@link appendSerial}'s text into `buf` from `pos`; returns the position after it. */
function writeSerial(buf: Uint8Array, days: number, seconds: number, pos = 0): number {
  const fraction = Math.round((seconds * 10 ** SERIAL_FRACTION_DIGITS) / 86_400);
  let length = 0;
  for (let n = days; n > 0 || length === 0; n = Math.floor(n / 10)) length += 1;
  for (let n = days, i = length - 1; i >= 0; n = Math.floor(n / 10), i--) buf[pos + i] = 0x30 + (n % 10);
  pos += length;
  if (fraction > 0) {
    let digits = SERIAL_FRACTION_DIGITS;
    let f = fraction;
    while (f % 10 === 0) {
      f /= 10;
      digits -= 1;
    }
    buf[pos++] = 0x2e;
    for (let i = digits - 1; i >= 0; i--) {
      buf[pos + i] = 0x30 + (f % 10);
      f = Math.floor(f / 10);
    }
    pos += digits;
  }
  return pos;
}

/** A sheet's name and its file inside the package. */
export interface XlsxSheet {
  readonly name: string;
}

const XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n';
const MAIN_NS = 'http://schemas.openxmlformats.org/spreadsheetml/2006/main';
const REL_NS = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships';

function escapeAttribute(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** The zip entry of sheet `index` (from 0). */
export function xlsxSheetEntry(index: number): string {
  return `xl/worksheets/sheet${index + 1}.xml`;
}

/**
 * A valid sheet name: 1 to 31 characters, none of `: \ / ? * [ ]`, not starting or ending with `'`.
 * @throws TypeError naming the rule a name breaks.
 */
export function checkSheetName(name: string): string {
  if (name.length < 1 || name.length > 31) throw new TypeError(`A sheet name has 1 to 31 characters, got ${JSON.stringify(name)}`);
  if (/[:\\/?*[\]]/.test(name) || name.startsWith("'") || name.endsWith("'")) {
    throw new TypeError(`A sheet name cannot hold : \\ / ? * [ ] nor start or end with ', got ${JSON.stringify(name)}`);
  }
  return name;
}

/** `[Content_Types].xml`. */
export function xlsxContentTypes(sheets: number, sharedStrings = false): string {
  const overrides = Array.from(
    { length: sheets },
    (_, index) => `<Override PartName="/${xlsxSheetEntry(index)}" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`,
  ).join('');
  return (
    XML_HEAD +
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
    '<Default Extension="xml" ContentType="application/xml"/>' +
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>' +
    overrides +
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>' +
    (sharedStrings
      ? `<Override PartName="/${XLSX_SHARED_STRINGS_ENTRY}" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>`
      : '') +
    '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>' +
    '</Types>'
  );
}

/** `_rels/.rels`. */
export const XLSX_ROOT_RELS =
  XML_HEAD +
  '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
  '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>' +
  '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/>' +
  '</Relationships>';

/** `docProps/app.xml`: the application that wrote the workbook. */
export const XLSX_APP_PROPERTIES =
  XML_HEAD +
  '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"><Application>audit-export</Application></Properties>';

/** `xl/workbook.xml`: the sheets, in order. */
export function xlsxWorkbook(sheetNames: readonly string[]): string {
  const sheets = sheetNames
    .map((name, index) => `<sheet name="${escapeAttribute(checkSheetName(name))}" sheetId="${index + 1}" r:id="rId${index + 1}"/>`)
    .join('');
  return `${XML_HEAD}<workbook xmlns="${MAIN_NS}" xmlns:r="${REL_NS}"><bookViews><workbookView activeTab="0"/></bookViews><sheets>${sheets}</sheets></workbook>`;
}

/** `xl/_rels/workbook.xml.rels`. */
export function xlsxWorkbookRels(sheets: number, sharedStrings = false): string {
  const rels = Array.from(
    { length: sheets },
    (_, index) =>
      `<Relationship Id="rId${index + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet${index + 1}.xml"/>`,
  ).join('');
  return (
    XML_HEAD +
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
    rels +
    `<Relationship Id="rId${sheets + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>` +
    (sharedStrings
      ? `<Relationship Id="rId${sheets + 2}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>`
      : '') +
    '</Relationships>'
  );
}

/** `xl/styles.xml`: the {@link XlsxStyle}s, in their order. */
export const XLSX_STYLES =
  XML_HEAD +
  `<styleSheet xmlns="${MAIN_NS}">` +
  '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>' +
  '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font><font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>' +
  '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>' +
  '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>' +
  '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>' +
  '<cellXfs count="5">' +
  '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>' +
  '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>' +
  '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyAlignment="1"><alignment vertical="top" wrapText="1"/></xf>' +
  '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>' +
  '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>' +
  '</cellXfs>' +
  '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>' +
  '</styleSheet>';

/** Narrowest and widest column, in characters. */
const MIN_WIDTH = 6;
const MAX_WIDTH = 60;

/**
 * A worksheet's start up to its first row: the frozen header pane and the column widths, from the
 * characters of each column's widest cell seen (header and first rows), clamped to 6..60.
 */
export function xlsxSheetStart(widths: readonly number[]): string {
  const cols = widths
    .map((chars, index) => {
      const width = Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, chars + 2));
      return `<col min="${index + 1}" max="${index + 1}" width="${width}" customWidth="1"/>`;
    })
    .join('');
  return (
    XML_HEAD +
    `<worksheet xmlns="${MAIN_NS}" xmlns:r="${REL_NS}">` +
    '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>' +
    '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>' +
    '<sheetFormatPr defaultRowHeight="15"/>' +
    (cols.length > 0 ? `<cols>${cols}</cols>` : '') +
    '<sheetData>'
  );
}

/** A worksheet's end after its last row: the autofilter over the header and the rows. */
export function xlsxSheetEnd(columns: number, rows: number): string {
  return `</sheetData><autoFilter ref="A1:${xlsxColumnName(columns - 1)}${Math.max(rows, 1)}"/></worksheet>`;
}

/** The package parts before the sheets, as zip entries in order. */
export function xlsxPackageParts(sheetNames: readonly string[], sharedStrings = false): { entry: string; text: string }[] {
  return [
    { entry: '[Content_Types].xml', text: xlsxContentTypes(sheetNames.length, sharedStrings) },
    { entry: '_rels/.rels', text: XLSX_ROOT_RELS },
    { entry: 'docProps/app.xml', text: XLSX_APP_PROPERTIES },
    { entry: 'xl/workbook.xml', text: xlsxWorkbook(sheetNames) },
    { entry: 'xl/_rels/workbook.xml.rels', text: xlsxWorkbookRels(sheetNames.length, sharedStrings) },
    { entry: 'xl/styles.xml', text: XLSX_STYLES },
  ];
}

/**
 * Sheet names of an export of `parts` parts: one sheet is named `single`; several are `Part 1`,
 * `Part 2`, ... (the CSV's part files, as sheets).
 */
export function xlsxSheetNames(single: string, parts: number): string[] {
  if (parts <= 1) return [checkSheetName(single)];
  return Array.from({ length: parts }, (_, index) => `Part ${index + 1}`);
}
