import pino, { type Logger } from 'pino';

const SEVERITY: Readonly<Record<string, string>> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

/**
 * JSON logs on stderr in the shape Cloud Logging reads (`severity`, `message`); stdout is kept for
 * the one-line JSON summary that scripts parse. Level from `LOG_LEVEL` (default info).
 */
export function createLogger(level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      messageKey: 'message',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }) },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
