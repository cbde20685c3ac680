/**
 * Formats a duration in whole seconds as `dd:hh:mm:ss`, each part zero-padded to two digits (days
 * may have more); `null` gives an empty string. Negative durations, which only inconsistent data
 * produces, keep their sign in front: `-00:00:01:05`.
 * @throws TypeError when the value is not a whole number of seconds.
 */
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return '';
  if (!Number.isSafeInteger(seconds)) {
    throw new TypeError(`Expected \`seconds\` to be a whole number of seconds, got ${seconds}`);
  }
  const sign = seconds < 0 ? '-' : '';
  let rest = Math.abs(seconds);
  const secs = rest % 60;
  rest = (rest - secs) / 60;
  const minutes = rest % 60;
  rest = (rest - minutes) / 60;
  const hours = rest % 24;
  const days = (rest - hours) / 24;
  return `${sign}${pad2(days)}:${pad2(hours)}:${pad2(minutes)}:${pad2(secs)}`;
}

function pad2(value: number): string {
  return value < 10 ? `0${value}` : String(value);
}

/**
 * Parses the whole seconds PostgreSQL computed (`trunc(extract(epoch from closed - opened))`) and
 * formats them with {@link formatDuration}.
 */
export function formatDurationText(secondsText: string | null): string {
  if (secondsText === null) return '';
  const seconds = Number(secondsText);
  if (secondsText.length === 0 || !Number.isSafeInteger(seconds)) {
    throw new Error(`Unexpected duration from PostgreSQL: ${JSON.stringify(secondsText)}`);
  }
  return formatDuration(seconds);
}
