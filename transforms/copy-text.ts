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
