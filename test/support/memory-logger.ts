import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { LOG_SERIALIZATION, withLoggableBindings } from '../../config/logs.js';

/** A log record as pino wrote it. */
export type LogRecord = Record<string, unknown> & { level: number; msg: string };

/** A pino logger that keeps its records in memory, for asserting on what was logged; errors and objects are serialized as the CLI's logger serializes them. */
export function memoryLogger(): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line !== '') records.push(JSON.parse(line) as LogRecord);
      }
      callback();
    },
  });
  return { logger: withLoggableBindings(pino({ level: 'debug', ...LOG_SERIALIZATION }, sink)), records };
}
