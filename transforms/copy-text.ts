import { CSV_BITS, CSV_BYTE_FLAGS } from './csv.js';

/**
 * Parsing of PostgreSQL's COPY text format (`COPY ... TO STDOUT`, no options), as pure functions.
 * In that format a raw TAB always separates columns and a raw LF always ends a row, because both
 * are escaped inside values; NULL is `\N`.
 */

const BACKSLASH = 0x5c;

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
};

/** Decodes the backslash escapes of one COPY text value (not `\N`, which {@link parseCopyTextRow} handles). */
export function unescapeCopyText(value: string): string {
  if (!value.includes('\\')) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const code = value.charCodeAt(i);
    if (code !== BACKSLASH || i + 1 >= value.length) {
      out += value[i];
      i += 1;
      continue;
    }
    const next = value[i + 1] as string;
    const simple = SIMPLE_ESCAPES[next];
    if (simple !== undefined) {
      out += simple;
      i += 2;
    } else if (next >= '0' && next <= '7') {
      const octal = /^[0-7]{1,3}/.exec(value.slice(i + 1, i + 4))?.[0] ?? next;
      out += String.fromCharCode(parseInt(octal, 8));
      i += 1 + octal.length;
    } else if (next === 'x' && /^[0-9a-fA-F]/.test(value.slice(i + 2, i + 3))) {
      const hex = /^[0-9a-fA-F]{1,2}/.exec(value.slice(i + 2, i + 4))?.[0] ?? '';
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2 + hex.length;
    } else {
      // PostgreSQL reads any other escaped character as itself.
      out += next;
      i += 2;
    }
  }
  return out;
}

/**
 * Splits one COPY text row (without its LF) into values; `\N` becomes `null`.
 * @throws Error when the row does not have `expectedColumns` columns, which means the query and the
 * parser disagree: failing beats writing shifted cells.
 */
export function parseCopyTextRow(row: string, expectedColumns: number): (string | null)[] {
  // One pass with indexOf instead of split() plus a scan of every value for escapes: this runs once
  // per exported row and was the export's largest cost on the main thread.
  const values: (string | null)[] = new Array<string | null>(expectedColumns);
  let column = 0;
  let start = 0;
  let nextTab = row.indexOf('\t');
  let nextBackslash = row.indexOf('\\');
  for (;;) {
    const end = nextTab === -1 ? row.length : nextTab;
    if (column >= expectedColumns) {
      throw new Error(`COPY row has ${row.split('\t').length} columns, expected ${expectedColumns}`);
    }
    if (nextBackslash !== -1 && nextBackslash < end) {
      const value = row.slice(start, end);
      values[column] = value === '\\N' ? null : unescapeCopyText(value);
      nextBackslash = row.indexOf('\\', end);
    } else {
      values[column] = row.slice(start, end);
    }
    column += 1;
    if (nextTab === -1) break;
    start = nextTab + 1;
    nextTab = row.indexOf('\t', start);
  }
  if (column !== expectedColumns) throw new Error(`COPY row has ${column} columns, expected ${expectedColumns}`);
  return values;
}

// The same format on UTF-8 bytes, for the export's hot path. TAB, LF and backslash are ASCII, which
// never occurs inside a multi-byte UTF-8 sequence, so rows split on bytes without decoding.
// test/csv-bytes.test.ts proves these agree with the string functions above.

const TAB = 0x09;
/** The largest decoding buffer a row keeps between values. */
const MAX_SCRATCH = 64 * 1024;
const UPPER_N = 0x4e;

/** What the row scanner records per byte: the CSV bits (see transforms/csv.ts), TAB, backslash, non-ASCII. */
const ROW_BYTE_TAB = 0x80;
const ROW_BYTE_BACKSLASH = 0x40;
const ROW_BYTE_NON_ASCII = 0x20;
/** Bytes XML text content cannot hold as they are (see transforms/xlsx.ts): & < > _ C0 controls, and 0xEF (U+FFFE/U+FFFF). */
const ROW_BYTE_XML = 0x08;
const ROW_BYTE_FLAGS: Uint8Array = (() => {
  const flags = CSV_BYTE_FLAGS.slice();
  for (let code = 0; code < 0x20; code++) flags[code]! |= ROW_BYTE_XML;
  for (const code of [0x26, 0x3c, 0x3e, 0x5f]) flags[code]! |= ROW_BYTE_XML;
  flags[TAB] = ROW_BYTE_TAB;
  flags[BACKSLASH] = ROW_BYTE_BACKSLASH;
  flags.fill(ROW_BYTE_NON_ASCII, 0x80);
  flags[0xef] = ROW_BYTE_NON_ASCII | ROW_BYTE_XML;
  return flags;
})();

const SIMPLE_ESCAPE_BYTES: Uint8Array = (() => {
  // 0 means "not a simple escape"; NUL is no simple escape's result.
  const bytes = new Uint8Array(256);
  for (const [letter, value] of Object.entries(SIMPLE_ESCAPES)) bytes[letter.charCodeAt(0)] = value.charCodeAt(0);
  return bytes;
})();

function octalDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x37;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  return -1;
}

/** Writes code point `code` (below 0x800) as UTF-8 at `dst[pos]`; returns the position after it. */
function putCodePoint(dst: Uint8Array, pos: number, code: number): number {
  if (code < 0x80) {
    dst[pos] = code;
    return pos + 1;
  }
  dst[pos] = 0xc0 | (code >> 6);
  dst[pos + 1] = 0x80 | (code & 0x3f);
  return pos + 2;
}

/**
 * {@link unescapeCopyText} on UTF-8 bytes: decodes the escapes of `src[start..end)` into `dst` from
 * `pos` and returns the position after the last byte written. The result is never longer than the
 * input. Like the string function, an octal or hex escape gives the code point of its number (not
 * a raw byte), so both give the same text.
 */
export function unescapeCopyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, pos: number): number {
  let i = start;
  while (i < end) {
    const code = src[i]!;
    if (code !== BACKSLASH || i + 1 >= end) {
      dst[pos++] = code;
      i += 1;
      continue;
    }
    const next = src[i + 1]!;
    const simple = SIMPLE_ESCAPE_BYTES[next]!;
    if (simple !== 0) {
      dst[pos++] = simple;
      i += 2;
    } else if (octalDigit(next)) {
      let value = next - 0x30;
      let j = i + 2;
      while (j < end && j < i + 4 && octalDigit(src[j]!)) value = value * 8 + (src[j++]! - 0x30);
      pos = putCodePoint(dst, pos, value);
      i = j;
    } else if (next === 0x78 && i + 2 < end && hexValue(src[i + 2]!) !== -1) {
      // x
      let value = hexValue(src[i + 2]!);
      let j = i + 3;
      if (j < end && hexValue(src[j]!) !== -1) value = value * 16 + hexValue(src[j++]!);
      pos = putCodePoint(dst, pos, value);
      i = j;
    } else {
      // Any other escaped character is itself; a multi-byte one is copied by the following turns.
      dst[pos++] = next;
      i += 2;
    }
  }
  return pos;
}

/**
 * One COPY text row as a view over its bytes: where each value starts and ends, and what its bytes
 * hold, found in one pass. Reused from row to row, so parsing a row allocates nothing.
 */
export class CopyTextRow {
  /** The bytes the row was parsed from. */
  src: Buffer = Buffer.alloc(0);
  /** Value `c` is `src[starts[c]..ends[c])`, still escaped. */
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  /** Per value: the CSV bits of its raw bytes (see `scanCsvValue` in transforms/csv.ts), and whether it holds a backslash or non-ASCII. */
  readonly flags: Uint8Array;
  #scratch: Buffer = Buffer.allocUnsafe(256);
  #decoded: Buffer = this.#scratch;

  /** @param columns how many values each row must have. */
  constructor(readonly columns: number) {
    this.starts = new Int32Array(columns);
    this.ends = new Int32Array(columns);
    this.flags = new Uint8Array(columns);
  }

  /**
   * Points the view at the row `src[start..end)` (without its LF).
   * @throws Error when the row does not have {@link columns} values, as {@link parseCopyTextRow}.
   */
  parse(src: Buffer, start: number, end: number): this {
    const { starts, ends, flags, columns } = this;
    this.src = src;
    this.#decoded = this.#scratch;
    let column = 0;
    let valueStart = start;
    let valueFlags = 0;
    for (let i = start; i < end; i++) {
      const bits = ROW_BYTE_FLAGS[src[i]!]!;
      if (bits === 0) continue;
      if (bits !== ROW_BYTE_TAB) {
        valueFlags |= bits;
        continue;
      }
      if (column >= columns - 1) throw this.#columnError(src, start, end);
      starts[column] = valueStart;
      ends[column] = i;
      flags[column] = valueFlags;
      column += 1;
      valueStart = i + 1;
      valueFlags = 0;
    }
    if (column !== columns - 1) throw this.#columnError(src, start, end);
    starts[column] = valueStart;
    ends[column] = end;
    flags[column] = valueFlags;
    return this;
  }

  /** True when value `c` holds a backslash escape (or is NULL): its raw bytes are not its text. */
  escaped(c: number): boolean {
    return (this.flags[c]! & ROW_BYTE_BACKSLASH) !== 0;
  }

  /** The CSV bits (see `scanCsvValue` in transforms/csv.ts) of value `c`'s raw bytes: its own when not {@link escaped}. */
  csvFlags(c: number): number {
    return this.flags[c]! & CSV_BITS;
  }

  /**
   * True when value `c`, not {@link escaped}, is XML text content as it is (no `&`, `<`, `>`, `_`,
   * control character or U+FFFE/U+FFFF lead byte), so the XLSX writer copies it without a scan.
   */
  xmlPlain(c: number): boolean {
    return (this.flags[c]! & (ROW_BYTE_XML | ROW_BYTE_BACKSLASH)) === 0;
  }

  /** True when value `c` is ASCII without escapes: its bytes are its characters, one each. */
  plainAscii(c: number): boolean {
    return (this.flags[c]! & (ROW_BYTE_BACKSLASH | ROW_BYTE_NON_ASCII)) === 0;
  }

  /** True when value `c` is `\N`, SQL NULL. */
  isNull(c: number): boolean {
    const start = this.starts[c]!;
    return (
      (this.flags[c]! & ROW_BYTE_BACKSLASH) !== 0 &&
      this.ends[c]! - start === 2 &&
      this.src[start] === BACKSLASH &&
      this.src[start + 1] === UPPER_N
    );
  }

  /** Value `c` decoded, exactly as {@link parseCopyTextRow} gives it (`null` for NULL). */
  text(c: number): string | null {
    if (this.isNull(c)) return null;
    const value = this.src.toString('utf8', this.starts[c], this.ends[c]);
    return this.escaped(c) ? unescapeCopyText(value) : value;
  }

  /** The buffer {@link unescapeInto} decoded into; valid until the next call or row. */
  get decoded(): Buffer {
    return this.#decoded;
  }

  /** True when {@link decoded} is a buffer of its own that is never written again (a huge value's). */
  get decodedIsOwn(): boolean {
    return this.#decoded !== this.#scratch;
  }

  /**
   * Decodes value `c`'s escapes into {@link decoded} (UTF-8, as {@link unescapeCopyText} gives it)
   * and returns its length in bytes. Not for NULL.
   */
  unescapeInto(c: number): number {
    const start = this.starts[c]!;
    const end = this.ends[c]!;
    const length = end - start;
    if (length <= this.#scratch.length) {
      this.#decoded = this.#scratch;
    } else if (length <= MAX_SCRATCH) {
      this.#scratch = Buffer.allocUnsafe(Math.min(MAX_SCRATCH, Math.max(2 * this.#scratch.length, length)));
      this.#decoded = this.#scratch;
    } else {
      // A huge value gets a buffer of its own, dropped with its row: the row must not keep it.
      this.#decoded = Buffer.allocUnsafe(length);
    }
    return unescapeCopyBytes(this.src, start, end, this.#decoded, 0);
  }

  /** True when value `c` is exactly the ASCII text `ascii` (given as its bytes). */
  equalsAscii(c: number, ascii: Uint8Array, asText: string): boolean {
    if (this.escaped(c)) return this.text(c) === asText;
    const start = this.starts[c]!;
    if (this.ends[c]! - start !== ascii.length) return false;
    for (let i = 0; i < ascii.length; i++) if (this.src[start + i] !== ascii[i]) return false;
    return true;
  }

  #columnError(src: Buffer, start: number, end: number): Error {
    let count = 1;
    for (let i = start; i < end; i++) if (src[i] === TAB) count += 1;
    return new Error(`COPY row has ${count} columns, expected ${this.columns}`);
  }
}
