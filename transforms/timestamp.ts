import type { ByteOutput } from './byte-output.js';

/**
 * Formats PostgreSQL's ISO text of a `timestamptz` (`DateStyle = ISO`, session `TimeZone` set to the
 * export's zone, for example `2026-09-01 07:00:00.999999-05`) as `YYYY-MM-DD HH:mm:ss`, truncating
 * fractional seconds (never rounding); `null` gives an empty string.
 *
 * The server already converted the instant into the export zone, so this only cuts the text: no
 * `Date` is created per cell, which was a measured cost.
 */
export function formatTimestamp(pgText: string | null): string {
  if (pgText === null) return '';
  // The common case: a four-digit year, then seconds followed by a fraction or the UTC offset.
  const after = pgText.charCodeAt(19);
  if (pgText.charCodeAt(10) === 0x20 && (after === 0x2e || after === 0x2b || after === 0x2d)) {
    return pgText.slice(0, 19);
  }
  const match = /^(\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)?(?:[+-]\d\d(?::\d\d){0,2})?( BC)?$/.exec(pgText);
  if (match === null) throw new Error(`Unexpected timestamp text from PostgreSQL: ${JSON.stringify(pgText)}`);
  return (match[1] as string) + (match[2] ?? '');
}

/**
 * {@link formatTimestamp}'s common case on the UTF-8 bytes `src[start..end)` of the raw value:
 * appends the first 19 bytes and returns true when the text is ASCII up to a `.`, `+` or `-` at
 * index 19 after a space at index 10 (then bytes and characters coincide); otherwise returns false
 * and appends nothing, for the caller to use {@link formatTimestamp}.
 * @param plainAscii the caller knows the value is ASCII without backslashes (skips that check).
 */
export function appendTimestampBytes(out: ByteOutput, src: Buffer, start: number, end: number, plainAscii = false): boolean {
  if (end - start < 20 || src[start + 10] !== 0x20) return false;
  const after = src[start + 19];
  if (after !== 0x2e && after !== 0x2b && after !== 0x2d) return false;
  if (!plainAscii) {
    for (let i = start; i < start + 19; i++) {
      const code = src[i]!;
      // Non-ASCII would shift characters against bytes; a backslash would be an escape.
      if (code >= 0x80 || code === 0x5c) return false;
    }
  }
  out.bytes(src, start, start + 19);
  return true;
}
