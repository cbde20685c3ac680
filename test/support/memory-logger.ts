import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

/** A log record as pino wrote it. */
export type LogRecord = Record<string, unknown> & { level: number; msg: string };

/** A pino logger that keeps its records in memory, for asserting on what was logged. */
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
  return { logger: pino({ level: 'debug' }, sink), records };
}
