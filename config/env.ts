/**
 * Reading settings and describing bad values: the small pieces every boundary of this program
 * shares, so that each names a setting and quotes a value the same way.
 */

/** The value of environment variable `name`, trimmed; undefined when unset or blank. */
export function setting(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** The longest text {@link describe} quotes whole; a longer one is cut, with its length said. */
export const DESCRIBE_MAX_CHARS = 200;

/**
 * A value as an error message quotes it: strings in JSON quotes (cut after
 * {@link DESCRIBE_MAX_CHARS} characters, so a hostile 1 MB value does not become a 1 MB error),
 * dates in ISO, other objects by their type (never serialized: they may be nested beyond the stack).
 */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    return value.length <= DESCRIBE_MAX_CHARS
      ? JSON.stringify(value)
      : `${JSON.stringify(value.slice(0, DESCRIBE_MAX_CHARS))}... (${value.length} characters)`;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (typeof value === 'object' && value !== null) return Object.prototype.toString.call(value);
  return String(value);
}
