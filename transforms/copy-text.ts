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
  const values: (string | null)[] = row.split('\t');
  if (values.length !== expectedColumns) {
    throw new Error(`COPY row has ${values.length} columns, expected ${expectedColumns}`);
  }
  for (let i = 0; i < values.length; i++) {
    const value = values[i] as string;
    if (value.length === 0 || value.charCodeAt(0) !== BACKSLASH) {
      if (value.includes('\\')) values[i] = unescapeCopyText(value);
    } else {
      values[i] = value === '\\N' ? null : unescapeCopyText(value);
    }
  }
  return values;
}
