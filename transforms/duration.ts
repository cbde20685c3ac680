import type { ByteOutput } from './byte-output.js';

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

function appendPadded2(out: ByteOutput, value: number): void {
  if (value < 10) {
    out.byte(0x30);
    out.byte(0x30 + value);
  } else {
    out.byte(0x30 + Math.floor(value / 10));
    out.byte(0x30 + (value % 10));
  }
}

/**
 * {@link formatDurationText}'s common case on the UTF-8 bytes `src[start..end)` of the raw value:
 * an optional `-` and up to 15 digits (always a safe integer). Appends the formatted duration and
 * returns true; returns false and appends nothing for anything else, for the caller to use
 * {@link formatDurationText} (which also gives its error).
 */
export function appendDurationBytes(out: ByteOutput, src: Buffer, start: number, end: number): boolean {
  let i = start;
  const negative = i < end && src[i] === 0x2d;
  if (negative) i += 1;
  if (i >= end || end - i > 15) return false;
  let seconds = 0;
  for (; i < end; i++) {
    const digit = src[i]! - 0x30;
    if (digit < 0 || digit > 9) return false;
    seconds = seconds * 10 + digit;
  }
  // `-0` is zero without a sign, as in formatDuration.
  if (negative && seconds > 0) out.byte(0x2d);
  let rest = seconds;
  const secs = rest % 60;
  rest = (rest - secs) / 60;
  const minutes = rest % 60;
  rest = (rest - minutes) / 60;
  const hours = rest % 24;
  const days = (rest - hours) / 24;
  if (days < 100) appendPadded2(out, days);
  else out.string(String(days));
  out.byte(0x3a);
  appendPadded2(out, hours);
  out.byte(0x3a);
  appendPadded2(out, minutes);
  out.byte(0x3a);
  appendPadded2(out, secs);
  return true;
}
