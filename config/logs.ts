/**
 * The shape of a log line as Cloud Logging reads it: `severity` and `message` (cli/logger.ts sets
 * those), the request id as an entry label, and nothing personal or secret in it. Pure functions;
 * the logger applies {@link formatLogLine} to every line it writes.
 */
import type { Bindings, ChildLoggerOptions, Logger } from 'pino';
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

/**
 * Fields of an error that a log line keeps besides `type`, `message`, `code` and `stack`, chosen one
 * by one: each says what failed without holding a client, a socket, a request or a configuration
 * (and so no connection parameters, headers or bodies). Only text, number and boolean values are
 * kept; the line's redaction (config/privacy.ts) still applies to them.
 *
 * - PostgreSQL (pg's `DatabaseError`): `severity`, `detail`, `hint`, `routine` and the object named
 *   (`schema`, `table`, `column`, `constraint`, `dataType`). Not `where` nor `internalQuery` (SQL
 *   text, values included), nor `file`/`line`/`position`/`length` (server internals).
 * - Node system errors: `errno`, `syscall`, `address`, `port` (the server's, not a person's).
 * - SMTP (nodemailer): `responseCode`, `command`, `response` (the server's reply text).
 * - HTTP and gRPC clients (gaxios, Google APIs, Pub/Sub): `status` and `details`, never their
 *   `config`, `response` or `metadata`.
 * - This project's errors: `field` (of an `InvalidRequestError`).
 */
export const LOGGED_ERROR_FIELDS: readonly string[] = [
  'severity',
  'detail',
  'hint',
  'routine',
  'schema',
  'table',
  'column',
  'constraint',
  'dataType',
  'errno',
  'syscall',
  'address',
  'port',
  'responseCode',
  'command',
  'response',
  'status',
  'details',
  'field',
];

/** An error as a log line shows it: see {@link serializeError}. */
export interface LoggedError {
  /** The error's class (`DatabaseError`, `GaxiosError`...), else its `name`. */
  readonly type: string;
  readonly message: string;
  readonly code?: string | number;
  readonly stack?: string;
  /** The error it wraps (`cause`), serialized the same way. */
  readonly cause?: LoggedError | LoggableValue;
  /** An `AggregateError`'s errors. */
  readonly errors?: readonly (LoggedError | LoggableValue)[];
  readonly [field: string]: unknown;
}

/** What a log line may hold: JSON values, nothing else. */
export type LoggableValue = string | number | boolean | null | readonly LoggableValue[] | { readonly [key: string]: LoggableValue | undefined } | LoggedError;

/** How deep a cause chain, or a nesting of plain objects, is followed before it is cut. */
export const MAX_LOG_DEPTH = 6;
/** Most items of an array (or errors of an `AggregateError`) a log line shows. */
export const MAX_LOG_ITEMS = 50;
/** Longest text an error's field keeps (an SMTP reply, a PostgreSQL detail); the rest is cut. */
export const MAX_ERROR_TEXT = 1000;

const clip = (text: string, limit: number): string => (text.length <= limit ? text : `${text.slice(0, limit)}… (${text.length - limit} more characters)`);

function className(value: object): string {
  const constructor = (value as { constructor?: unknown }).constructor;
  return typeof constructor === 'function' && constructor.name !== '' ? constructor.name : 'Object';
}

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * An error as a log line may show it: `type`, `message`, `code`, `stack`, the fields of
 * {@link LOGGED_ERROR_FIELDS} and, serialized the same way, its `cause` and an `AggregateError`'s
 * `errors`. Everything else an error carries is left out: pg attaches its `client` to an idle
 * client's error, gaxios its request `config` (headers, credentials) and `response`, gRPC its
 * `metadata`; any of them would put kilobytes of connection state, or secrets, into one line.
 */
export function serializeError(error: Error, depth = 0): LoggedError {
  const fields = error as unknown as Record<string, unknown>;
  const result: Record<string, unknown> = {
    type: className(error) === 'Object' ? error.name : className(error),
    message: typeof error.message === 'string' ? error.message : String(error.message),
  };
  const { code } = fields;
  if (typeof code === 'string' || typeof code === 'number') result.code = code;
  if (typeof error.stack === 'string') result.stack = error.stack;
  for (const field of LOGGED_ERROR_FIELDS) {
    const value = fields[field];
    if (typeof value === 'string') result[field] = clip(value, MAX_ERROR_TEXT);
    else if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') result[field] = value;
  }
  if (error.cause !== undefined) result.cause = depth >= MAX_LOG_DEPTH ? '[cause]' : loggableValue(error.cause, depth + 1);
  if (error instanceof AggregateError && Array.isArray(error.errors)) {
    result.errors = depth >= MAX_LOG_DEPTH ? '[errors]' : loggableValue(error.errors, depth + 1);
  }
  return result as LoggedError;
}

/**
 * A value as a log line may hold it: text, numbers, booleans and null as they are; errors by
 * {@link serializeError}; arrays and plain objects walked (at most {@link MAX_LOG_ITEMS} items and
 * {@link MAX_LOG_DEPTH} levels); a `Date` as its ISO text and a `URL` as its text; bytes as their
 * length. Any other object (a class instance: a `pg.Client`, a `Socket`, an `IncomingMessage`, a
 * pool, a configuration class) is shown only by its class name, `[Client]`: its fields are
 * connection state and configuration, and would carry them into the line wholesale. Functions and
 * symbols are left out, as JSON leaves them out.
 */
export function loggableValue(value: unknown, depth = 0): LoggableValue | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  const object = value as object;
  if (object instanceof Error) return serializeError(object, depth);
  if (depth >= MAX_LOG_DEPTH) return Array.isArray(object) ? '[Array]' : `[${className(object)}]`;
  if (Array.isArray(object)) {
    const items = object.slice(0, MAX_LOG_ITEMS).map((item) => loggableValue(item, depth + 1) ?? null);
    return object.length > MAX_LOG_ITEMS ? [...items, `… ${object.length - MAX_LOG_ITEMS} more`] : items;
  }
  if (object instanceof Date) return Number.isNaN(object.getTime()) ? 'Invalid Date' : object.toISOString();
  if (object instanceof URL) return object.href;
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer) return `[${className(object)} of ${object.byteLength} bytes]`;
  if (!isPlainObject(object)) return `[${className(object)}]`;
  return loggableFields(object as Record<string, unknown>, depth);
}

/** The fields of a log call's object (or of a child logger's bindings), each by {@link loggableValue}. */
export function loggableFields(fields: Readonly<Record<string, unknown>>, depth = 0): Record<string, LoggableValue> {
  const result: Record<string, LoggableValue> = {};
  for (const [key, value] of Object.entries(fields)) {
    const loggable = loggableValue(value, depth + 1);
    if (loggable !== undefined) result[key] = loggable;
  }
  return result;
}

/**
 * The part of pino's options that keeps log lines to the fields above, for the CLI's logger and
 * the tests' loggers alike: every value of a call's object (and of `base`) goes through
 * {@link loggableValue} (so an `Error` under any key, `err`, `error`, `cause`, is serialized by
 * {@link serializeError}), and `err` is serialized by it too, in place of pino's own serializer,
 * which copies every enumerable field of an error. pino does not apply formatters to a child's
 * bindings: {@link withLoggableBindings} does that part.
 */
export const LOG_SERIALIZATION = {
  serializers: { err: (value: unknown): unknown => loggableValue(value) },
  formatters: {
    log: (object: Record<string, unknown>): Record<string, unknown> =>
      isPlainObject(object) ? loggableFields(object) : { value: loggableValue(object) },
    // Called with pino's `base` too, which the CLI sets to undefined.
    bindings: (bindings: Record<string, unknown> | undefined): Record<string, unknown> => (bindings === undefined || bindings === null ? {} : loggableFields(bindings)),
  },
} as const;

/**
 * `logger`, whose children (and theirs) bind their fields through {@link loggableFields}, so a
 * class instance or an error bound with `child()` is shown as a log call's field would be. pino
 * applies no formatter to a child's bindings; its children are created with `Object.create` of
 * their parent, so the `child` set here on the root is the one every descendant calls.
 */
export function withLoggableBindings(logger: Logger): Logger {
  const child = logger.child;
  logger.child = function <ChildCustomLevels extends string = never>(this: Logger, bindings: Bindings, options?: ChildLoggerOptions<ChildCustomLevels>) {
    return child.call(this, loggableFields(bindings), options) as Logger<ChildCustomLevels>;
  };
  return logger;
}
