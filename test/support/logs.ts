import pino, { type Logger } from 'pino';
import { LOG_SERIALIZATION, withLoggableBindings } from '../../config/logs.js';

/** A pino logger whose JSON lines are kept in memory, for asserting on what was logged. */
export interface CapturedLogs {
  readonly logger: Logger;
  /** Every line written so far, parsed. */
  readonly entries: Record<string, unknown>[];
  /** Every line written so far, as written. */
  readonly text: () => string;
}

/** Creates a debug-level logger that writes into memory, serializing errors and objects as the CLI's logger does. */
export function captureLogs(): CapturedLogs {
  const lines: string[] = [];
  const logger = withLoggableBindings(pino({ level: 'debug', base: undefined, ...LOG_SERIALIZATION }, { write: (line: string) => void lines.push(line) }));
  return {
    logger,
    get entries() {
      return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    text: () => lines.join(''),
  };
}
