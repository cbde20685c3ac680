/**
 * The lines a terminal would show for `output`: carriage return back to column 0, ESC[K clears to
 * the end of the line, LF starts a new line; other characters overwrite what is under the cursor.
 */
export function screenOf(output: string): string[] {
  const rows: string[] = [''];
  let column = 0;
  for (let i = 0; i < output.length; i++) {
    const row = rows.length - 1;
    const current = rows[row] as string;
    if (output.startsWith('\u001b[K', i)) {
      rows[row] = current.slice(0, column);
      i += 2;
    } else if (output[i] === '\r') {
      column = 0;
    } else if (output[i] === '\n') {
      rows.push('');
      column = 0;
    } else {
      // Code points, not UTF-16 units: the bar's cells are one unit each, but be exact anyway.
      const character = String.fromCodePoint(output.codePointAt(i) as number);
      rows[row] = current.slice(0, column).padEnd(column) + character + current.slice(column + character.length);
      column += character.length;
      i += character.length - 1;
    }
  }
  return rows;
}
