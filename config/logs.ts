/**
 * The shape of a log line as Cloud Logging reads it: `severity` and `message` (cli/logger.ts sets
 * those), the request id as an entry label, and nothing personal or secret in it. Pure functions;
 * the logger applies {@link formatLogLine} to every line it writes.
 */
import type { Logger } from 'pino';
import { redactLogValue, redactText } from './privacy.js';

/**
 * The field Cloud Logging moves out of a structured line into the entry's labels, so a request's
 * lines can be found with `labels.requestId="..."` and are indexed across services.
 */
export const LABELS_KEY = 'logging.googleapis.com/labels';

/**
 * One log line (pino's JSON text) as it is written: every value redacted (see config/privacy.ts),
 * and, when it names a request (`requestId`), that id as a Cloud Logging label; the plain
 * `requestId` field stays for queries on the payload. Parsing the line also keeps a field logged
 * twice (a child's binding and the call's own field) once: the call's value, as a JSON reader
 * would take it. Text that is not a JSON object is redacted as text.
 */
export function formatLogLine(line: string): string {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return redactText(line);
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return redactText(line);
  const clean = redactLogValue(record) as Record<string, unknown>;
  if (typeof clean.requestId === 'string' && clean.requestId !== '') {
    const labels = clean[LABELS_KEY];
    clean[LABELS_KEY] = { ...(typeof labels === 'object' && labels !== null ? labels : {}), requestId: clean.requestId };
  }
  return `${JSON.stringify(clean)}\n`;
}

/**
 * A logger whose every line names the request `requestId` (and so carries its label), with
 * `fields` bound as well. A logger already bound to that request is reused rather than bound again,
 * so functions can call this on whatever logger they were given.
 */
export function requestLogger(logger: Logger, requestId: string, fields: Readonly<Record<string, unknown>> = {}): Logger {
  const bound = logger.bindings().requestId === requestId;
  if (bound && Object.keys(fields).length === 0) return logger;
  return logger.child(bound ? { ...fields } : { requestId, ...fields });
}

/** Seconds since `started` (a `performance.now()` reading), to the millisecond: how log lines show durations. */
export function secondsSince(started: number): number {
  return Math.round(performance.now() - started) / 1000;
}
