/**
 * Reading settings and describing bad values: the small pieces every boundary of this program
 * shares, so that each names a setting and quotes a value the same way.
 */

/** The value of environment variable `name`, trimmed; undefined when unset or blank. */
export function setting(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** Longer strings are quoted only this far (in UTF-16 units), then counted: an error is read by people. */
export const MAX_QUOTED_LENGTH = 200;

/**
 * A value as an error message quotes it: strings in JSON quotes, dates in ISO, other objects by
 * their type. Strings are quoted so that what is shown is what was given: besides JSON's escapes
 * (control characters, lone surrogates), invisible and direction-changing characters (U+202E,
 * zero-width spaces, C1 controls, line separators) are escaped as `\uXXXX`, which would otherwise
 * reorder or hide the rest of the line on a terminal; past {@link MAX_QUOTED_LENGTH} characters
 * the quote is cut and the length given.
 */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    const long = value.length > MAX_QUOTED_LENGTH;
    const quoted = JSON.stringify(long ? value.slice(0, MAX_QUOTED_LENGTH) : value).replace(/[\p{Cf}\p{Zl}\p{Zp}\u0080-\u009f]/gu, (character) => {
      const code = character.codePointAt(0) ?? 0;
      return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
    });
    return long ? `${quoted}... (${value.length} characters)` : quoted;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (typeof value === 'object' && value !== null) return Object.prototype.toString.call(value);
  return String(value);
}
