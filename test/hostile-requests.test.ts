import { once } from 'node:events';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { processRequest, type LifecycleDeps } from '../jobs/lifecycle/process.js';
import { DEFAULT_LIMITS, readRequest } from '../jobs/lifecycle/state.js';
import { MAX_REQUEST_BYTES, parseExportRequest, parseRequestDocument } from '../jobs/requests.js';
import { FileOutputTarget } from '../sinks/file.js';
import { collect, runCli, startCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, silentLogger, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { rejection } from './support/rejection.js';

/**
 * Hostile request documents (`run --request FILE|-`, `EXPORT_REQUEST`, a worker's or a push's
 * message): whatever arrives is either a valid request or `rejected` with the field named, never a
 * crash (exit 1, a retried delivery), never a change to another request, never an object written.
 */

const db = useTestDatabase();
beforeAll(async () => {
  await loadFixture(db.pool);
  await migrateState(db.pool);
});

const base = { kind: 'conversations', merchantId: 1, from: '2026-09-01', to: '2026-10-31' } as const;
const deep = (levels: number): unknown => JSON.parse(`${'['.repeat(levels)}${']'.repeat(levels)}`);

/** A request document whose `field` is 100,000 nested arrays (JSON.stringify cannot write that deep). */
const deepField = (requestId: string, field: string): string =>
  `${JSON.stringify({ ...base, requestId }).slice(0, -1)},"${field}":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;

describe('documents that are no request object', () => {
  // Factories, not values: vitest formats a table's values, and 100,000 levels overflow its stack.
  it.each([
    ['an array', () => []],
    ['a number', () => 42],
    ['null', () => null],
    ['a string', () => 'conversations'],
    ['true', () => true],
    ['an array of a request', () => [base]],
    ['100,000 nested arrays', () => deep(100_000)],
  ])('refuses %s as `request`, briefly', (_name, value) => {
    const error = rejection(() => parseExportRequest(value()));
    expect(error.field).toBe('request');
    expect(error.message.length).toBeLessThan(200);
  });
});

describe('wrong types for every field', () => {
  const values: [string, unknown][] = [
    ['a number', 1.5],
    ['a negative number', -1],
    ['text', 'x'],
    ['empty text', ''],
    ['true', true],
    ['a list', ['x']],
    ['an object', { x: 1 }],
    ['100,000 nested arrays', deep(100_000)],
    ['a 1 MB text', 'y'.repeat(1_000_000)],
  ];
  const conversationFields = ['kind', 'requestId', 'merchantId', 'from', 'to', 'timezone', 'recipients', 'locale', 'requestedBy', 'filters', 'csv'];
  const nested: [string, Record<string, unknown>][] = [
    ['filters.agentIds', { filters: {} }],
    ['filters.providers', { filters: {} }],
    ['filters.aliases', { filters: {} }],
    ['filters.statuses', { filters: {} }],
    ['csv.bom', { csv: {} }],
    ['csv.formulaGuard', { csv: {} }],
    ['csv.rowsPerFile', { csv: {} }],
    ['requestedBy.userId', { requestedBy: { userId: 'u' } }],
    ['requestedBy.email', { requestedBy: { userId: 'u' } }],
  ];

  for (const [valueName, value] of values) {
    it(`${valueName}: each field refuses it naming itself (or takes it where it is valid)`, () => {
      const tried: string[] = [];
      const check = (field: string, document: Record<string, unknown>, parse = parseExportRequest): void => {
        let error: InvalidRequestError;
        try {
          parse(document);
          return; // Valid there (text for requestId, a list of text for providers...).
        } catch (thrown) {
          expect(thrown, field).toBeInstanceOf(InvalidRequestError);
          error = thrown as InvalidRequestError;
        }
        expect(error.field === field || error.field.startsWith(`${field}[`) || error.field.startsWith(`${field}.`), `${field}: ${error.field}`).toBe(true);
        expect(error.message.length, field).toBeLessThan(600);
        tried.push(field);
      };
      for (const field of conversationFields) check(field, { ...base, [field]: value });
      for (const [path, parent] of nested) {
        const [head, leaf] = path.split('.') as [string, string];
        check(path, { ...base, ...parent, [head]: { ...(parent[head] as object), [leaf]: value } });
      }
      check('botIds', { ...base, kind: 'stop-slots', botIds: value });
      expect(tried.length).toBeGreaterThan(10);
    });
  }
});

describe('prototype keys', () => {
  it.each([
    '{"__proto__":{"polluted":true},"kind":"conversations","merchantId":1,"from":"2026-09-01","to":"2026-10-31"}',
    '{"kind":"conversations","merchantId":1,"from":"2026-09-01","to":"2026-10-31","constructor":{"prototype":{"polluted":true}}}',
    '{"kind":"conversations","merchantId":1,"from":"2026-09-01","to":"2026-10-31","filters":{"__proto__":{"agentIds":[1]}}}',
    '{"kind":"conversations","merchantId":1,"from":"2026-09-01","to":"2026-10-31","csv":{"__proto__":{"bom":false}}}',
    '{"kind":"conversations","merchantId":1,"from":"2026-09-01","to":"2026-10-31","requestedBy":{"userId":"u","__proto__":{"email":"x@y.com"}}}',
    '{"kind":"stop-slots","merchantId":1,"from":"2026-09-01","to":"2026-10-31","hasOwnProperty":1}',
  ])('refuses %s as an unknown field, and pollutes nothing', (text) => {
    const error = rejection(() => parseExportRequest(parseRequestDocument(text)));
    expect(error.message).toContain('unknown field');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('agentIds');
  });

  it('takes "__proto__" as a plain value', () => {
    expect(parseExportRequest({ ...base, filters: { providers: ['__proto__'] } })).toMatchObject({ filters: { providers: ['__proto__'] } });
  });
});

describe('parseRequestDocument: size, syntax, duplicate keys', () => {
  it('refuses a document over the limit by its size, before parsing it', () => {
    expect(MAX_REQUEST_BYTES).toBe(1024 * 1024);
    const big = JSON.stringify({ ...base, requestId: 'x', csv: { bom: true }, pad: 'z'.repeat(MAX_REQUEST_BYTES) });
    const error = rejection(() => parseRequestDocument(big));
    expect(error.field).toBe('request');
    expect(error.message).toBe(`request: ${Buffer.byteLength(big)} bytes, larger than the limit of 1048576 bytes (1 MiB)`);
    // Bytes count, not characters: 600,000 two-byte characters are over.
    expect(rejection(() => parseRequestDocument(`"${'é'.repeat(600_000)}"`)).message).toContain('larger than the limit');
    expect(parseRequestDocument(Buffer.from(JSON.stringify(base)))).toEqual(base);
  });

  it.each(['', ' ', '{', '{nope', '{"kind":"conversations",}', "{'kind':'conversations'}", '{"a":1}{"b":2}', 'NaN', '\u0000', '[[[[[[', '['.repeat(100_000)])(
    'refuses malformed JSON %#',
    (text) => {
      expect(rejection(() => parseRequestDocument(text)).message).toBe('request: not valid JSON');
    },
  );

  it('refuses a duplicated key, naming it, wherever it is: which copy counts would differ from parser to parser', () => {
    const cases: [string, string][] = [
      ['{"kind":"conversations","merchantId":1,"merchantId":2,"from":"2026-09-01","to":"2026-10-31"}', 'merchantId'],
      ['{"merchantId":1,"kind":"conversations","from":"2026-09-01","to":"2026-10-31","merchant\\u0049d":2}', 'merchantId'],
      ['{"kind":"conversations","filters":{"agentIds":[1],"agentIds":[2]}}', 'filters.agentIds'],
      ['{"kind":"conversations","requestedBy":{"userId":"a","email":"x@y.com","email":"z@y.com"}}', 'requestedBy.email'],
      ['{"list":[{"a":1},{"b":1,"b":2}]}', 'list[1].b'],
      ['{"a\\"b":1,"a\\"b":2}', 'a"b'],
    ];
    for (const [text, field] of cases) {
      const error = rejection(() => parseRequestDocument(text));
      expect(error.field, text).toBe(field);
      expect(error.message).toContain('appears more than once');
    }
    // Equal keys in different objects are no duplicates; nor are equal strings that are values.
    expect(parseRequestDocument('{"a":{"k":1},"b":{"k":1},"c":["a","a"],"d":"a"}')).toEqual({ a: { k: 1 }, b: { k: 1 }, c: ['a', 'a'], d: 'a' });
    expect(parseRequestDocument(`${'['.repeat(100_000)}{"a":1}${']'.repeat(100_000)}`)).toBeInstanceOf(Array);
  });
});

describe('through the lifecycle: rejected with the field named; nothing else changes', () => {
  async function harness(): Promise<{ deps: LifecycleDeps; directory: string }> {
    const directory = await temporaryDirectory();
    const deps: LifecycleDeps = {
      source: db.pool,
      state: db.pool,
      output: new FileOutputTarget(directory),
      announce: async () => '1',
      logger: silentLogger,
      worker: 'hostile-worker',
      limits: DEFAULT_LIMITS,
      leaseMs: 60_000,
      heartbeatMs: 100,
      shutdown: new AbortController().signal,
    };
    return { deps, directory };
  }

  const snapshot = async (): Promise<unknown[]> =>
    (await db.pool.query('SELECT request_id, status, error, rows, uri, updated_at FROM audit_export_requests ORDER BY request_id')).rows;

  it('records each hostile document as rejected, writes no file, and leaves a known request alone', async () => {
    const { deps, directory } = await harness();
    const good = await processRequest(JSON.stringify({ ...base, requestId: 'hostile-good', to: '2026-09-15' }), deps);
    expect(good.record.status).toBe('uploaded');
    const goodFiles = await listFiles(directory);
    const cases: [string, string | Buffer, RegExp][] = [
      ['not JSON', '{nope', /^request: not valid JSON$/],
      ['empty', '', /^request: not valid JSON$/],
      ['binary', Buffer.from([0xff, 0xfe, 0x00, 0x7b]), /^request: not valid JSON$/],
      ['too large', JSON.stringify({ ...base, requestId: 'hostile-big', pad: 'z'.repeat(MAX_REQUEST_BYTES) }), /^request: \d+ bytes, larger than the limit/],
      ['deeply nested', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, /^request: expected a JSON object/],
      ['nested field', deepField('hostile-deep', 'locale'), /^locale: expected one of en, es, pt/],
      ['duplicate key', '{"kind":"conversations","merchantId":1,"merchantId":2,"from":"2026-09-01","to":"2026-09-02","requestId":"hostile-dup"}', /^merchantId: appears more than once/],
      ['proto', JSON.stringify({ ...base, requestId: 'hostile-proto', filters: JSON.parse('{"__proto__":{"agentIds":[1]}}') }), /^filters.__proto__: unknown field/],
      ['a malformed copy of a known id', JSON.stringify({ ...base, requestId: 'hostile-good', merchantId: '0x1' }), /^$/],
    ];
    for (const [name, data, reason] of cases) {
      const before = (await snapshot()).filter((row) => (row as { request_id: string }).request_id === 'hostile-good');
      const outcome = await processRequest(data, deps, `msg-${name.replaceAll(' ', '-')}`);
      expect(outcome.verdict, name).toBe('ack');
      if (name === 'a malformed copy of a known id') {
        expect(outcome.record).toMatchObject({ requestId: 'hostile-good', status: 'uploaded' });
      } else {
        expect(outcome.exitCode, name).toBe(2);
        expect(outcome.record.status, name).toBe('rejected');
        expect(outcome.record.error, name).toMatch(reason);
        expect((outcome.record.error ?? '').length, name).toBeLessThan(600);
      }
      const after = (await snapshot()).filter((row) => (row as { request_id: string }).request_id === 'hostile-good');
      expect(after, name).toEqual(before);
    }
    expect(await listFiles(directory)).toEqual(goodFiles);
    expect(await readRequest(db.pool, 'hostile-good')).toMatchObject({ status: 'uploaded', error: null });
  });
});

describe('audit-export run: exit 2, nothing written', () => {
  async function environment(): Promise<{ env: Record<string, string>; out: string }> {
    const out = await temporaryDirectory();
    return { out, env: { DATABASE_URL: db.url, OUTPUT_URI: `file://${out}`, HEARTBEAT_MS: '200' } };
  }

  it('refuses a 50 MB --request FILE by its size, reading no more than the limit', async () => {
    const { env, out } = await environment();
    const file = join(out, '..', `hostile-${Date.now()}.json`);
    const handle = await open(file, 'w');
    await handle.truncate(50 * 1024 * 1024); // Sparse: 50 MB of NULs without writing them.
    await handle.close();
    const result = await runCli(['run', '--request', file], env);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('audit-export: invalid request: --request: larger than the limit of 1048576 bytes (1 MiB)');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(await listFiles(out)).toEqual([]);
  });

  it('stops reading a 50 MB document on stdin at the limit and exits 2', async () => {
    const { env, out } = await environment();
    const child = startCli(['run', '--request', '-'], env, undefined, 'pipe');
    const done = collect(child);
    const chunk = Buffer.alloc(64 * 1024, ' ');
    let written = 0;
    child.stdin?.on('error', () => {}); // EPIPE once the CLI has stopped reading and exited.
    const exited = once(child, 'exit');
    let stopped = false;
    void exited.then(() => (stopped = true));
    while (!stopped && written < 50 * 1024 * 1024) {
      if (!child.stdin?.write(chunk)) await Promise.race([once(child.stdin!, 'drain').catch(() => {}), exited]);
      written += chunk.length;
    }
    child.stdin?.destroy();
    const result = await done;
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('--request: larger than the limit of 1048576 bytes (1 MiB)');
    expect(written).toBeLessThan(16 * 1024 * 1024);
    expect(await listFiles(out)).toEqual([]);
  });

  it.each([
    ['malformed JSON', '{"kind": "conversations", ', /^request: not valid JSON$/],
    ['100,000 levels of [', '['.repeat(100_000), /^request: not valid JSON$/],
    ['nested arrays in a field', deepField('run-deep', 'timezone'), /^timezone: expected an IANA/],
    ['a JSON null', 'null', /^request: expected a JSON object/],
    ['duplicate keys', '{"kind":"conversations","kind":"stop-slots","merchantId":1,"from":"2026-09-01","to":"2026-09-02"}', /^kind: appears more than once/],
  ])('records %s from a file as rejected', async (_name, text, reason) => {
    const { env, out } = await environment();
    const file = join(out, '..', `hostile-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, text);
    const result = await runCli(['run', '--request', file], env);
    expect(result.code, result.stderr).toBe(2);
    expect(result.summary).toMatchObject({ status: 'rejected' });
    expect(String(result.summary?.error)).toMatch(reason);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(await listFiles(out)).toEqual([]);
  });

  it.each([
    ['base64 garbage', '!!!not*base64***'],
    ['base64 of garbage', Buffer.from('\u0000\u0001 nope').toString('base64')],
    ['base64 of an array', Buffer.from('[1,2]').toString('base64')],
  ])('records EXPORT_REQUEST %s as rejected', async (_name, value) => {
    const { env, out } = await environment();
    const result = await runCli(['run'], { ...env, EXPORT_REQUEST: value });
    expect(result.code, result.stderr).toBe(2);
    expect(result.summary).toMatchObject({ status: 'rejected' });
    expect(String(result.summary?.error)).toMatch(/^request: /);
    expect(await listFiles(out)).toEqual([]);
  });
});
