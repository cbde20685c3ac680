/**
 * PostgreSQL's text COPY format (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2):
 * one line per row, columns separated by TAB, `\N` for NULL. Pure functions, no database.
 */

/** A value of one column: text, a number written in decimal, or NULL. */
export type CopyValue = string | number | null;

const NEEDS_ESCAPE = /[\\\t\n\r]/;
const ESCAPED = /[\\\t\n\r]/g;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * Escapes one text value. Only backslash and the three characters that end a column or a row need
 * it; every other character, also other control characters, is taken literally by the server.
 */
export function escapeCopyText(value: string): string {
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPED, (character) => ESCAPES[character] ?? character) : value;
}

/** Formats one row as a COPY text line, including its terminating LF. */
export function copyLine(values: readonly CopyValue[]): string {
  let line = '';
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i];
    if (i > 0) line += '\t';
    if (value === null || value === undefined) line += '\\N';
    else if (typeof value === 'number') line += String(value);
    else line += escapeCopyText(value);
  }
  return line + '\n';
}

const MICROS_PER_MILLI = 1000;
const MICROS_PER_SECOND = 1_000_000;

/**
 * Formats microseconds since the Unix epoch as an ISO 8601 UTC timestamp with all six fractional
 * digits (`2026-09-01T12:00:00.999999Z`), which a `timestamptz` column stores exactly.
 */
export function copyTimestamp(micros: number): string {
  if (!Number.isSafeInteger(micros) || micros < 0) {
    throw new RangeError(`Expected microseconds since 1970 as a non-negative safe integer, got ${micros}`);
  }
  const fraction = micros % MICROS_PER_SECOND;
  // toISOString is the fastest correct calendar conversion available; its milliseconds are replaced.
  const iso = new Date((micros - fraction) / MICROS_PER_MILLI).toISOString();
  return `${iso.slice(0, 19)}.${String(fraction).padStart(6, '0')}Z`;
}

/** Default chunk size: large enough that per-message overhead is negligible, small enough to stay cache-friendly. */
export const COPY_CHUNK_CHARS = 64 * 1024;

/**
 * Groups lines into chunks of about `size` characters (never splitting a line), lazily: only one
 * chunk exists at a time, so memory does not grow with the number of rows.
 */
export function* chunkLines(lines: Iterable<string>, size: number = COPY_CHUNK_CHARS): Generator<string> {
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new TypeError(`Expected \`size\` to be a positive integer, got ${String(size)}`);
  }
  let chunk = '';
  for (const line of lines) {
    chunk += line;
    if (chunk.length >= size) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk.length > 0) yield chunk;
}
