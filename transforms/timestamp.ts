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
