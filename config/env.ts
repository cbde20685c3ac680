/**
 * Reading settings and describing bad values: the small pieces every boundary of this program
 * shares, so that each names a setting and quotes a value the same way.
 */

/** The value of environment variable `name`, trimmed; undefined when unset or blank. */
export function setting(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** A value as an error message quotes it: strings in JSON quotes, dates in ISO, other objects by their type. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (typeof value === 'object' && value !== null) return Object.prototype.toString.call(value);
  return String(value);
}
