import pino, { type Logger } from 'pino';
import { formatLogLine, LOG_SERIALIZATION, withLoggableBindings } from '../config/logs.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { StatusLine } from '../pipeline/progress.js';

const SEVERITY: Readonly<Record<string, string>> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

/** The levels README documents, for messages. */
const DOCUMENTED_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** Every level pino knows: the undocumented ones keep working as they always did. */
const LEVELS: ReadonlySet<string> = new Set([...DOCUMENTED_LEVELS, 'trace', 'fatal', 'silent']);

/**
 * The log level `LOG_LEVEL` asks for, lower-cased; unset or empty is `info`.
 * @throws InvalidRequestError naming LOG_LEVEL and the allowed values (pino would throw its own
 * error from deep inside, before any command could turn it into exit 2).
 */
export function parseLogLevel(value: string | undefined): string {
  if (value === undefined || value === '') return 'info';
  const level = value.toLowerCase();
  if (!LEVELS.has(level)) throw new InvalidRequestError('LOG_LEVEL', `expected one of ${DOCUMENTED_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  return level;
}

/**
 * JSON logs on stderr in the shape Cloud Logging reads (`severity`, `message`, the request id as
 * the `requestId` label); stdout is kept for the one-line JSON summary that scripts parse. Every
 * line is redacted on its way out (secrets, e-mail addresses, phone numbers: config/privacy.ts),
 * whichever call wrote it. Level from `LOG_LEVEL` (default info; see {@link parseLogLevel}). With a
 * terminal's status line (the progress bar), each log line is written above it, never into it. Errors show their type,
 * message, code, stack and a few chosen fields only, and class instances (a pg client, a socket,
 * a request) their class name only, under any field (config/logs.ts: `LOG_SERIALIZATION`).
 */
export function createLogger(level = process.env.LOG_LEVEL, line?: StatusLine): Logger {
  const options = {
    level: parseLogLevel(level),
    messageKey: 'message',
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: LOG_SERIALIZATION.serializers,
    formatters: { ...LOG_SERIALIZATION.formatters, level: (label: string) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }) },
    // On the finished line, so the message, child bindings and serialized errors (stacks, SMTP
    // replies, PostgreSQL details quoting a row) all pass through it.
    hooks: { streamWrite: formatLogLine },
  };
  // Synchronous: a log line written just before the process exits is not lost.
  if (line === undefined) return withLoggableBindings(pino(options, pino.destination({ fd: 2, sync: true })));
  return withLoggableBindings(pino(options, { write: (chunk: string) => line.writeAbove(chunk) }));
}

/** The status line of a terminal on stderr, writing through the same synchronous stderr as the logs; undefined when stderr is not a terminal. */
export function stderrStatusLine(): StatusLine | undefined {
  if (process.stderr.isTTY !== true) return undefined;
  const stderr = pino.destination({ fd: 2, sync: true });
  return new StatusLine((text) => stderr.write(text), () => process.stderr.columns);
}
