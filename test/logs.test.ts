import { describe, expect, it } from 'vitest';
import { createLogger } from '../cli/logger.js';
import { formatLogLine, LABELS_KEY, requestLogger } from '../config/logs.js';
import { PHONE_MASK, REDACTED } from '../config/privacy.js';
import { StatusLine } from '../pipeline/progress.js';
import { captureLogs } from './support/logs.js';

/** The CLI's logger (`createLogger`), writing into memory through a status line, as on a terminal. */
function cliLogger(level = 'debug'): { logger: ReturnType<typeof createLogger>; lines: () => string[] } {
  let text = '';
  const line = new StatusLine((chunk) => (text += chunk), () => 80);
  return { logger: createLogger(level, line), lines: () => text.split('\n').filter((entry) => entry !== '') };
}

describe('log lines', () => {
  it('carry the request id as a Cloud Logging label, and keep it as a field', () => {
    const line = formatLogLine('{"severity":"INFO","requestId":"r-1","message":"export running"}\n');
    expect(line.endsWith('\n')).toBe(true);
    expect(JSON.parse(line)).toEqual({ severity: 'INFO', requestId: 'r-1', message: 'export running', [LABELS_KEY]: { requestId: 'r-1' } });
  });

  it('add the request id to labels a line already has, and leave lines without a request unlabelled', () => {
    const labelled = JSON.parse(formatLogLine(`{"requestId":"r-2","${LABELS_KEY}":{"service":"mailer"}}`)) as Record<string, unknown>;
    expect(labelled[LABELS_KEY]).toEqual({ service: 'mailer', requestId: 'r-2' });
    expect(JSON.parse(formatLogLine('{"message":"worker started"}'))).toEqual({ message: 'worker started' });
  });

  it('keep a field logged twice once, with the value the call gave', () => {
    expect(JSON.parse(formatLogLine('{"requestId":"a","kind":"x","kind":"y"}'))).toEqual({ requestId: 'a', kind: 'y', [LABELS_KEY]: { requestId: 'a' } });
  });

  it('are redacted, and text that is not a JSON object is redacted as text', () => {
    const line = JSON.parse(formatLogLine('{"message":"no user ana@example.com","phone":"+57 300 123 4567","err":{"stack":"at 3001234567"}}'));
    expect(line).toEqual({ message: 'no user a***@example.com', phone: REDACTED, err: { stack: `at ${PHONE_MASK}` } });
    expect(formatLogLine('plain ana@example.com +57 300 123 4567\n')).toBe(`plain a***@example.com ${PHONE_MASK}\n`);
    expect(formatLogLine('["ana@example.com"]')).toBe('["a***@example.com"]');
  });
});

describe('request loggers', () => {
  it('bind the request id once, however often a function binds it again', () => {
    const logs = captureLogs();
    const log = requestLogger(logs.logger, 'r-7');
    expect(requestLogger(log, 'r-7')).toBe(log);
    requestLogger(requestLogger(log, 'r-7', { kind: 'conversations' }), 'r-7').info('once');
    expect(logs.text().match(/"requestId"/g)).toHaveLength(1);
    expect(logs.entries[0]).toMatchObject({ requestId: 'r-7', kind: 'conversations', msg: 'once' });
  });

  it('name another request when asked to, without the first id showing through', () => {
    const { logger, lines } = cliLogger();
    requestLogger(requestLogger(logger, 'first'), 'second').info('moved on');
    const [line] = lines();
    expect(JSON.parse(line!)).toMatchObject({ requestId: 'second', [LABELS_KEY]: { requestId: 'second' } });
    expect(line).not.toContain('first');
  });
});

describe('the CLI logger', () => {
  it('writes severity, message and the request label on every line of a request, redacted whatever the call site', () => {
    const { logger, lines } = cliLogger();
    const log = requestLogger(logger, 'req-42');
    log.info({ recipients: ['ana@example.com'], rows: 1234567890 }, 'export announced');
    log.child({ merchantId: '3001234567' }).warn({ reason: 'recipients[0]: "foo@bar" is not a valid e-mail address' }, 'request rejected');
    const failure = Object.assign(new Error('duplicate key value violates unique constraint'), {
      detail: 'Key (phone_number)=(+57 300 123 4567) already exists; contact ana@example.com',
    });
    log.error({ err: failure }, 'export failed; a redelivery retries it');
    log.error(new Error('SMTP 550 <bruno@example.org>: no such user, call (601) 555-0100'));
    logger.info('worker started');

    const records = lines().map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.map((record) => [record.severity, record.message])).toEqual([
      ['INFO', 'export announced'],
      ['WARNING', 'request rejected'],
      ['ERROR', 'export failed; a redelivery retries it'],
      ['ERROR', `SMTP 550 <b***@example.org>: no such user, call ${PHONE_MASK}`],
      ['INFO', 'worker started'],
    ]);
    for (const record of records.slice(0, 4)) {
      expect(record.requestId).toBe('req-42');
      expect(record[LABELS_KEY]).toEqual({ requestId: 'req-42' });
    }
    expect(records[4]).not.toHaveProperty(LABELS_KEY);
    expect(records[0]).toMatchObject({ recipients: ['a***@example.com'], rows: 1234567890 });
    expect(records[1]).toMatchObject({ merchantId: '3001234567', reason: 'recipients[0]: "f***@bar" is not a valid e-mail address' });
    expect(records[2]?.err).toMatchObject({
      message: 'duplicate key value violates unique constraint',
      detail: `Key (phone_number)=(${PHONE_MASK}) already exists; contact a***@example.com`,
    });
    const text = lines().join('\n');
    for (const secret of ['ana@example.com', 'foo@bar', 'bruno@example.org', '300 123 4567', '555-0100']) expect(text).not.toContain(secret);
  });

  it('leaves out what is below LOG_LEVEL', () => {
    const { logger, lines } = cliLogger('warn');
    logger.info('hidden');
    logger.warn('shown');
    expect(lines().map((line) => (JSON.parse(line) as { message: string }).message)).toEqual(['shown']);
  });
});
