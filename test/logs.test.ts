import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer as createHttpServer, IncomingMessage } from 'node:http';
import { connect, createServer, Socket, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gaxios } from 'google-auth-library';
import pg from 'pg';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../cli/database.js';
import { createLogger } from '../cli/logger.js';
import { formatLogLine, LABELS_KEY, requestLogger } from '../config/logs.js';
import { PHONE_MASK, REDACTED } from '../config/privacy.js';
import { createPool } from '../db/connection.js';
import { StatusLine } from '../pipeline/progress.js';
import { useTestDatabase } from './support/database.js';
import { captureLogs } from './support/logs.js';
import { memoryLogger } from './support/memory-logger.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

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

// ---------------------------------------------------------------------------------------------
// Errors in log lines: only `type`, `message`, `code`, `stack`, the chosen fields and the cause;
// never a client, a socket, a request or a configuration.

/** What an error in a log line may have, written out here rather than taken from config/logs.ts. */
const ERROR_KEYS = new Set([
  'type', 'message', 'code', 'stack', 'cause', 'errors',
  'severity', 'detail', 'hint', 'routine', 'schema', 'table', 'column', 'constraint', 'dataType',
  'errno', 'syscall', 'address', 'port',
  'responseCode', 'command', 'response',
  'status', 'details', 'field',
]);
/** Field names that only a client, a socket, a request or a configuration has. */
const STATE_KEYS = /^(?:client|connection|connectionParameters|stream|socket|_\w+|config|request|response|headers|metadata|agent|secretKey|processID|password)$/;

/** Every error-shaped object in a parsed log line (an object with `type` and `message`), at any depth. */
function errorsIn(value: unknown, found: Record<string, unknown>[] = []): Record<string, unknown>[] {
  if (Array.isArray(value)) value.forEach((item) => errorsIn(item, found));
  else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    if (typeof record.type === 'string' && typeof record.message === 'string') found.push(record);
    Object.values(record).forEach((item) => errorsIn(item, found));
  }
  return found;
}

/** The fields of a parsed log line, at any depth, named like a client's, a socket's or a configuration's and holding more than a text (a class name). */
function stateIn(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((item) => stateIn(item, found));
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (STATE_KEYS.test(key) && typeof item !== 'string') found.push(key);
      stateIn(item, found);
    }
  }
  return found;
}

/** The line without the stacks of its errors: what the size limit is about. */
function withoutStacks(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutStacks);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'stack').map(([key, item]) => [key, withoutStacks(item)]));
}

/** Asserts a logged line carries errors with only the allowed fields, no client/socket/config state, and is small without its stacks. */
function expectSmallErrorLine(line: string, label: string): Record<string, unknown> {
  const record = JSON.parse(line) as Record<string, unknown>;
  const errors = errorsIn(record);
  expect(errors.length, `${label}: ${line.slice(0, 300)}`).toBeGreaterThan(0);
  for (const error of errors) {
    expect(Object.keys(error).filter((key) => !ERROR_KEYS.has(key)), `${label}: fields of ${String(error.type)}`).toEqual([]);
    for (const key of ERROR_KEYS) {
      if (key !== 'cause' && key !== 'errors' && key in error) expect(['string', 'number', 'boolean'], `${label}: ${key}`).toContain(typeof error[key]);
    }
  }
  expect(stateIn(record), label).toEqual([]);
  expect(JSON.stringify(withoutStacks(record)).length, `${label}: ${line.slice(0, 300)}`).toBeLessThan(2048);
  return record;
}

/** A real node-postgres error of an idle client whose backend was terminated: pg-pool attaches the client to it. */
async function idleClientError(url: string): Promise<Error> {
  let failed: (error: Error) => void = () => {};
  const error = new Promise<Error>((resolve) => (failed = resolve));
  const applicationName = `audit-export-idle-${randomUUID().slice(0, 8)}`;
  const pool = createPool(url, { applicationName }, (failure) => failed(failure));
  try {
    await pool.query('SELECT 1');
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
    } finally {
      await admin.end();
    }
    return await error;
  } finally {
    await pool.end();
  }
}

/** A real socket error: a connection to a port nothing listens on. */
async function socketError(): Promise<Error> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return await new Promise<Error>((resolve) => connect(port, '127.0.0.1').once('error', resolve));
}

/** A real gaxios error (what Google's clients reject with): its `config` has the request's headers, its `response` the body and the config again. */
async function gaxiosError(): Promise<Error> {
  const server = createHttpServer((request, response) => {
    request.resume();
    response.writeHead(403, { 'content-type': 'application/json', 'set-cookie': 'session=abc' }).end(JSON.stringify({ error: { code: 403, message: 'caller does not have storage.objects.create access', errors: [{ reason: 'forbidden' }] } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await new gaxios.Gaxios().request({
      url: `http://127.0.0.1:${port}/upload/storage/v1/b/bucket/o?uploadType=resumable&upload_id=secret-session`,
      method: 'POST',
      headers: { Authorization: 'Bearer ya29.secret-token', 'x-goog-user-project': 'project' },
      data: { name: 'exports/conversations.zip', metadata: { recipients: 'ana@example.com' } },
      retry: false,
    });
  } catch (error) {
    return error as Error;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  throw new Error('the request to a server answering 403 succeeded');
}

/** A call site in the source that logs an error: `file`, its level, the field the error goes in, its other fields, its message. */
interface ErrorCallSite {
  readonly where: string;
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  readonly errorField: string;
  readonly otherFields: readonly string[];
}

const SOURCE_FOLDERS = ['cli', 'jobs', 'sinks', 'db', 'sources', 'pipeline', 'config'];
// `log.warn({ err: error }, ...)`, `logger.error({ ...who, err: failure, merchantId: ... }, ...)`: a
// logger call whose object has an `err` or `error` field (or a bare `{ err }`), on one line.
const ERROR_CALL = /\.(trace|debug|info|warn|error|fatal)\(\{([^}]*\b(?:err|error)\b[^}]*)\}/g;

/** Every logger call in the project's source whose object has an `err` or `error` field. */
async function errorCallSites(): Promise<ErrorCallSite[]> {
  const sites: ErrorCallSite[] = [];
  for (const folder of SOURCE_FOLDERS) {
    for (const file of await readdir(join(REPO, folder), { recursive: true })) {
      if (!file.endsWith('.ts')) continue;
      const lines = (await readFile(join(REPO, folder, file), 'utf8')).split('\n');
      lines.forEach((text, index) => {
        for (const match of text.matchAll(ERROR_CALL)) {
          const fields = (match[2] ?? '').split(',').map((field) => field.trim().split(':')[0]?.trim() ?? '').filter((field) => field !== '' && !field.startsWith('...'));
          const errorField = fields.find((field) => field === 'err' || field === 'error');
          if (errorField === undefined) continue;
          sites.push({ where: `${folder}/${file}:${index + 1}`, level: match[1] as ErrorCallSite['level'], errorField, otherFields: fields.filter((field) => field !== errorField) });
        }
      });
    }
  }
  return sites;
}

describe('errors in log lines', () => {
  const db = useTestDatabase();
  let samples: { name: string; error: Error }[];

  beforeAll(async () => {
    samples = [
      { name: 'pg idle client error', error: await idleClientError(db.url) },
      { name: 'socket error', error: await socketError() },
      { name: 'gaxios error', error: await gaxiosError() },
    ];
  });

  it('start from errors that do carry a client, a socket state or a request configuration', () => {
    const [pgError, netError, httpError] = samples.map(({ error }) => error as unknown as Record<string, unknown>);
    expect(pgError?.client).toBeInstanceOf(pg.Client);
    expect(netError).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
    expect(httpError).toMatchObject({ status: 403, config: expect.any(Object), response: expect.any(Object) });
  });

  it('show only type, message, code, stack and the chosen fields, under 2 KB without stacks, on every call path that logs an error', async () => {
    const sites = await errorCallSites();
    // The call sites this test was written against; a new one is covered the moment it is written.
    for (const known of ['cli/database.ts', 'cli/program.ts', 'cli/commands/mail-step.ts', 'cli/commands/backfill.ts', 'cli/commands/demo.ts', 'cli/demo/inbox.ts', 'jobs/backfill/run.ts', 'jobs/mailer/push-server.ts', 'jobs/mailer/pull.ts', 'jobs/mailer/handle.ts', 'jobs/lifecycle/process.ts']) {
      expect(sites.map((site) => site.where.split(':')[0]), known).toContain(known);
    }
    const cli = cliLogger();
    const memory = memoryLogger();
    const captured = captureLogs();
    let count = 0;
    for (const site of sites) {
      for (const { name, error } of samples) {
        // The call's other fields as text; `describeError` call sites hand the error in as it came.
        const fields = { ...Object.fromEntries(site.otherFields.map((field) => [field, `${field}-value`])), [site.errorField]: error };
        for (const logger of [cli.logger, requestLogger(cli.logger, 'r-1').child({ component: 'test' }), memory.logger, captured.logger]) {
          logger[site.level === 'trace' || site.level === 'debug' ? 'warn' : site.level](fields, `${site.where} ${name}`);
          count += 1;
        }
      }
    }
    const lines = [...cli.lines(), ...memory.records.map((record) => JSON.stringify(record)), ...captured.text().split('\n').filter((line) => line !== '')];
    expect(lines).toHaveLength(count);
    for (const line of lines) {
      const record = expectSmallErrorLine(line, String((JSON.parse(line) as { message?: string; msg?: string }).message ?? (JSON.parse(line) as { msg?: string }).msg));
      const [error] = errorsIn(record);
      expect(error).toMatchObject({ type: expect.any(String), message: expect.any(String), stack: expect.any(String) });
    }
  });

  it('keep what tells the failures apart: the SQLSTATE and severity, the system call, the HTTP status', () => {
    const { logger, lines } = cliLogger();
    for (const { error } of samples) logger.warn({ err: error }, 'failed');
    const errors = lines().map((line) => (JSON.parse(line) as { err: Record<string, unknown> }).err);
    expect(errors[0]).toMatchObject({ type: 'DatabaseError', code: '57P01', severity: 'FATAL', routine: 'ProcessInterrupts', message: 'terminating connection due to administrator command' });
    expect(errors[1]).toMatchObject({ type: 'Error', code: 'ECONNREFUSED', syscall: 'connect', address: '127.0.0.1' });
    expect(errors[2]).toMatchObject({ type: 'GaxiosError', status: 403 });
    const text = lines().join('\n');
    for (const secret of ['ya29.secret-token', 'secret-session', 'session=abc', 'ana@example.com', 'audit-export-idle-']) expect(text).not.toContain(secret);
  });

  it('log the idle connection failure of `openDatabase` (the demo\'s warning) as one small line', async () => {
    const { logger, lines } = cliLogger();
    const previous = process.env.DATABASE_URL;
    process.env.DATABASE_URL = db.url;
    const database = await openDatabase(logger, { allowEmbedded: false });
    process.env.DATABASE_URL = previous;
    try {
      const { rows } = await database.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
      await vi.waitFor(() => expect(lines().some((line) => line.includes('idle database connection failed'))).toBe(true));
    } finally {
      await database.close();
    }
    const line = lines().find((entry) => entry.includes('idle database connection failed')) ?? '';
    const record = expectSmallErrorLine(line, 'idle database connection failed');
    expect(record).toMatchObject({ severity: 'WARNING', err: { type: 'DatabaseError', code: '57P01' } });
    expect(line.length).toBeLessThan(2048);
  });

  it('show a class instance under any field by its class name only, and an Error under any field as an error', async () => {
    const { logger, lines } = cliLogger();
    const client = new pg.Client({ connectionString: 'postgres://user:pw@127.0.0.1:1/db' });
    const socket = new Socket();
    const request = new IncomingMessage(socket);
    const nested = new Error('outer', { cause: Object.assign(new Error('inner'), { client, code: 'E_INNER' }) });
    logger.child({ pool: new pg.Pool() }).warn({ client, socket, request, list: [socket, 1], when: new Date(0), bytes: Buffer.alloc(4096), error: nested, reason: new AggregateError([new Error('one')], 'many') }, 'state');
    socket.destroy();
    const [line] = lines();
    const record = expectSmallErrorLine(line ?? '', 'class instances');
    expect(record).toMatchObject({
      pool: '[BoundPool]',
      client: '[Client]',
      socket: '[Socket]',
      request: '[IncomingMessage]',
      list: ['[Socket]', 1],
      when: '1970-01-01T00:00:00.000Z',
      bytes: '[Buffer of 4096 bytes]',
      error: { type: 'Error', message: 'outer', cause: { type: 'Error', message: 'inner', code: 'E_INNER' } },
      reason: { type: 'AggregateError', message: 'many', errors: [{ type: 'Error', message: 'one' }] },
    });
    expect(line).not.toContain('pw');
  });
});
