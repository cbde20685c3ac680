import { beforeAll, describe, expect, it } from 'vitest';
import { lifecyclePoolSizes, openLifecycle } from '../cli/commands/requests.js';
import { migrateState } from '../db/migrate.js';
import type { ReadyAnnouncement } from '../jobs/announcement.js';
import { processRequest, type LifecycleDeps } from '../jobs/lifecycle/process.js';
import { cancelRequest, claim, markExpired, DEFAULT_LIMITS, listRequests, readRequest, type RequestRecord } from '../jobs/lifecycle/state.js';
import { Writable } from 'node:stream';
import type pg from 'pg';
import { progressStarter } from '../pipeline/progress.js';
import { FileOutputTarget } from '../sinks/file.js';
import type { OutputTarget } from '../sinks/output.js';
import { captureLogs } from './support/logs.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, silentLogger, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { loadVolume } from './support/volume.js';

const db = useTestDatabase();
beforeAll(async () => {
  await loadFixture(db.pool);
  await loadVolume(db.pool, 9, 2000, 50);
  await migrateState(db.pool);
}, 120_000);

interface Harness {
  readonly deps: LifecycleDeps;
  readonly directory: string;
  readonly announced: ReadyAnnouncement[];
}

async function harness(overrides: Partial<LifecycleDeps> = {}): Promise<Harness> {
  const directory = await temporaryDirectory();
  const announced: ReadyAnnouncement[] = [];
  const deps: LifecycleDeps = {
    source: db.pool,
    state: db.pool,
    output: new FileOutputTarget(directory),
    announce: async (announcement) => {
      announced.push(announcement);
      return String(announced.length);
    },
    logger: silentLogger,
    worker: `test-worker-${Math.random().toString(36).slice(2, 8)}`,
    limits: DEFAULT_LIMITS,
    leaseMs: 60_000,
    heartbeatMs: 100,
    shutdown: new AbortController().signal,
    ...overrides,
  };
  return { deps, directory, announced };
}

let sequence = 0;
/** A valid request of merchant 1; every call a new request id and a range of its own (no coalescing). */
function request(fields: Record<string, unknown> = {}): Record<string, unknown> {
  sequence += 1;
  return { kind: 'conversations', merchantId: 1, from: '2026-09-01', to: '2026-10-31', requestId: `life-${sequence}`, timezone: 'America/Bogota', csv: { rowsPerFile: 1000 + sequence }, ...fields };
}
const data = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** Lets a test hold an export mid-stream: writes wait once `allowance` bytes have passed. */
class Valve {
  #allowance: number;
  #written = 0;
  #waiting: (() => void)[] = [];

  constructor(allowance: number) {
    this.#allowance = allowance;
  }

  async pass(bytes: number): Promise<void> {
    while (this.#written >= this.#allowance) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#written += bytes;
  }

  /** Lets `bytes` more through (Infinity: everything). */
  widen(bytes: number): void {
    this.#allowance += bytes;
    for (const resume of this.#waiting.splice(0)) resume();
  }
}

/** `inner`, with every object's bytes going through `valve` first. */
function throughValve(inner: OutputTarget, valve: Valve): OutputTarget {
  return {
    description: inner.description,
    find: (name) => inner.find(name),
    async open(object) {
      const pending = await inner.open(object);
      const stream = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          valve.pass(chunk.length).then(() => {
            if (pending.stream.write(chunk)) callback();
            else pending.stream.once('drain', () => callback());
          }, callback);
        },
        final(callback) {
          pending.stream.end(() => callback());
        },
      });
      return { stream, commit: () => pending.commit(), discard: () => pending.discard() };
    },
  };
}

/** Polls until `check` is true (the export is held, so this waits on the export, not on a clock). */
async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`gave up waiting: ${what}`);
}

describe('the request lifecycle', () => {
  it('exports, uploads and announces a request, and a redelivery does nothing more', async () => {
    const { deps, directory, announced } = await harness();
    const doc = request({ recipients: ['ana@merchant.test'], requestedBy: { userId: 7, email: 'ops@merchant.test' } });
    const first = await processRequest(data(doc), deps);
    expect(first).toMatchObject({ verdict: 'ack', exitCode: 0, record: { status: 'delivered', rows: 10, attempts: 1 } });
    expect(first.record.uri).toMatch(/^file:\/\/.*life-\d+\.zip$/);
    expect(announced).toHaveLength(1);
    expect(announced[0]).toMatchObject({ requestId: doc.requestId, rows: 10, recipients: ['ana@merchant.test'], linkSeconds: 604800 });
    expect(announced[0]?.parameters.timezone).toBe('America/Bogota');
    const again = await processRequest(data(doc), deps);
    expect(again).toMatchObject({ verdict: 'ack', exitCode: 0, record: { status: 'delivered', attempts: 1 } });
    expect(announced).toHaveLength(1);
    expect(await listFiles(directory)).toHaveLength(1);
  });

  it('acks a redelivered request the mail step marked expired, exporting and announcing nothing more', async () => {
    const { deps, directory, announced } = await harness();
    const doc = request({ recipients: ['ana@merchant.test'] });
    await processRequest(data(doc), deps);
    expect(await markExpired(deps.state, String(doc.requestId), 'object file:///x.zip is gone')).toBe('expired');
    const again = await processRequest(data(doc), deps);
    expect(again).toMatchObject({ verdict: 'ack', exitCode: 0, record: { status: 'expired', error: 'object file:///x.zip is gone', attempts: 1 } });
    expect(announced).toHaveLength(1);
    expect(await listFiles(directory)).toHaveLength(1);
  });

  it('ends a request without recipients at uploaded, announcing nothing', async () => {
    const { deps, announced } = await harness();
    const outcome = await processRequest(data(request()), deps);
    expect(outcome.record.status).toBe('uploaded');
    expect(announced).toEqual([]);
  });

  it('announces an uploaded but unannounced request on redelivery without exporting again', async () => {
    let fail = true;
    const { deps, directory, announced } = await harness({
      announce: async (announcement) => {
        if (fail) throw new Error('Pub/Sub unavailable');
        announced.push(announcement);
        return 'm1';
      },
    });
    const doc = request({ recipients: ['bob@merchant.test'] });
    const first = await processRequest(data(doc), deps);
    expect(first).toMatchObject({ verdict: 'nack', exitCode: 1, record: { status: 'uploaded' } });
    const files = await listFiles(directory);
    fail = false;
    const second = await processRequest(data(doc), deps);
    expect(second).toMatchObject({ verdict: 'ack', exitCode: 0, record: { status: 'delivered', attempts: 1 } });
    expect(announced).toHaveLength(1);
    expect(await listFiles(directory)).toEqual(files);
  });

  it('coalesces an equal request (other id and requester) into the active or recent one, never into a failed one', async () => {
    const { deps, directory } = await harness();
    const doc = request({ recipients: ['c@merchant.test'] });
    const first = await processRequest(data(doc), deps);
    const twin = { ...doc, requestId: `${String(doc.requestId)}-twin`, requestedBy: { userId: 'someone-else' }, recipients: ['C@Merchant.test'] };
    const second = await processRequest(data(twin), deps);
    expect(second).toMatchObject({ verdict: 'ack', exitCode: 0, record: { status: 'coalesced', coalescedInto: first.record.requestId } });
    expect(await listFiles(directory)).toHaveLength(1);
    // A different parameter is a different request.
    const other = await processRequest(data({ ...doc, requestId: `${String(doc.requestId)}-other`, locale: 'es' }), deps);
    expect(other.record.status).toBe('delivered');

    await db.pool.query(`UPDATE audit_export_requests SET status = 'failed' WHERE request_id = $1`, [first.record.requestId]);
    const afterFailure = await processRequest(data({ ...doc, requestId: `${String(doc.requestId)}-after` }), deps);
    expect(afterFailure.record.status).toBe('delivered');
  });

  it.each([
    ['not JSON', Buffer.from('{nope'), /not valid JSON/],
    ['an unknown kind', data({ ...request(), kind: 'invoices' }), /kind: expected one of conversations/],
    ['a range over 60 days', data(request({ to: '2026-11-15' })), /longer than 60 days/],
    ['an active-only status filter', data(request({ filters: { statuses: ['OPENED'] } })), /only active chats/],
    ['an unknown merchant', data(request({ merchantId: 404 })), /no merchant with id 404/],
    ['a bad e-mail', data(request({ recipients: ['not-an-address'] })), /not a valid e-mail address/],
  ])('rejects %s with the reason, acked and never retried', async (_name, message, reason) => {
    const { deps, directory } = await harness();
    const outcome = await processRequest(message, deps);
    expect(outcome).toMatchObject({ verdict: 'ack', exitCode: 2, record: { status: 'rejected' } });
    expect(outcome.record.error).toMatch(reason);
    expect(await listFiles(directory)).toEqual([]);
    expect((await readRequest(db.pool, outcome.record.requestId))?.status).toBe('rejected');
  });

  it('records a redelivered malformed message once (regression: every delivery added a record)', async () => {
    const { deps } = await harness();
    const before = (await db.pool.query('SELECT count(*)::int AS n FROM audit_export_requests')).rows[0].n as number;
    const garbage = Buffer.from('{"kind": "conversations", "merchantId": "x"');
    const first = await processRequest(garbage, deps, 'm-123');
    const again = await processRequest(garbage, deps, 'm-123');
    expect(again.record.requestId).toBe(first.record.requestId);
    expect(first.record.requestId).toBe('message-m-123');
    // Without a message id (run), the content names it.
    const viaRun = await processRequest(garbage, deps);
    expect((await processRequest(garbage, deps)).record.requestId).toBe(viaRun.record.requestId);
    const after = (await db.pool.query('SELECT count(*)::int AS n FROM audit_export_requests')).rows[0].n as number;
    expect(after - before).toBe(2);
  });

  it('does not let a malformed document that borrowed a request id block the valid request with that id', async () => {
    const { deps } = await harness();
    const doc = request();
    const malformed = await processRequest(data({ ...doc, from: 'yesterday' }), deps);
    expect(malformed.record).toMatchObject({ requestId: doc.requestId, status: 'rejected' });
    const valid = await processRequest(data(doc), deps);
    expect(valid.record).toMatchObject({ requestId: doc.requestId, status: 'uploaded' });
    // The other way round, the malformed copy leaves the request alone.
    const late = await processRequest(data({ ...doc, from: 'yesterday' }), deps);
    expect(late).toMatchObject({ verdict: 'ack', exitCode: 0, record: { status: 'uploaded' } });
  });

  it('enforces the per-merchant limits, counting only accepted requests', async () => {
    const { deps } = await harness({ limits: { ...DEFAULT_LIMITS, maxActivePerMerchant: 1, maxAcceptedPerHour: 1000 } });
    // Merchant 2 has its own counters.
    const queued = request({ merchantId: 2, timezone: 'Asia/Tokyo' });
    await db.pool.query(
      `INSERT INTO audit_export_requests (request_id, kind, merchant_id, status, accepted_at) VALUES ($1, 'conversations', '2', 'running', now())`,
      [`${String(queued.requestId)}-holder`],
    );
    const over = await processRequest(data(queued), deps);
    expect(over.record).toMatchObject({ status: 'rejected' });
    expect(over.record.error).toMatch(/already has 1 exports queued or running \(at most 1 at once\)/);
    await db.pool.query(`UPDATE audit_export_requests SET status = 'delivered' WHERE request_id = $1`, [`${String(queued.requestId)}-holder`]);

    const hourly = await harness({ limits: { ...DEFAULT_LIMITS, maxAcceptedPerHour: 3 } });
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await processRequest(data(request({ merchantId: 2, timezone: 'Asia/Tokyo' })), hourly.deps));
    expect(results.map((result) => result.record.status)).toEqual(['uploaded', 'uploaded', 'rejected']);
    expect(results[2]?.record.error).toMatch(/had 3 requests accepted in the last hour \(at most 3\)/);
  });

  it('never exports one request twice: the same id again is the same request, and a fresh lease elsewhere is left alone', async () => {
    const { deps } = await harness();
    const doc = request();
    await processRequest(data({ ...doc, kind: 'conversations' }), { ...deps, shutdown: AbortSignal.abort() });
    // Shut down at once: handed back as queued.
    expect((await readRequest(db.pool, String(doc.requestId)))?.status).toBe('queued');
    const other = await claim(db.pool, String(doc.requestId), 'other-worker', 60_000);
    expect(other?.status).toBe('running');
    const meanwhile = await processRequest(data(doc), deps);
    expect(meanwhile).toMatchObject({ verdict: 'nack', record: { status: 'running', worker: 'other-worker' } });
    // Once its heartbeat is older than the lease, it is taken over.
    const takeover = await processRequest(data(doc), { ...deps, leaseMs: 1 });
    // Attempts: the one handed back at shutdown, the other worker's, and this takeover.
    expect(takeover.record).toMatchObject({ status: 'uploaded', attempts: 3 });
  });

  it('cancels a running export within 2 seconds: exit 3, nothing left, nothing announced', async () => {
    const { deps, directory, announced } = await harness();
    const doc = request({ merchantId: 9, from: '2026-09-01', to: '2026-10-01', recipients: ['d@merchant.test'] });
    const running = processRequest(data(doc), deps);
    for (let i = 0; i < 100 && (await readRequest(db.pool, String(doc.requestId)))?.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 20));
    const cancelledAt = performance.now();
    expect((await cancelRequest(db.pool, String(doc.requestId)))?.status).toBe('cancelled');
    const outcome = await running;
    expect(performance.now() - cancelledAt).toBeLessThan(2000);
    expect(outcome).toMatchObject({ verdict: 'ack', exitCode: 3, record: { status: 'cancelled' } });
    expect(await listFiles(directory)).toEqual([]);
    expect(announced).toEqual([]);
    // A later delivery of the cancelled request does nothing.
    expect(await processRequest(data(doc), deps)).toMatchObject({ verdict: 'ack', exitCode: 3 });
    expect(await listFiles(directory)).toEqual([]);
  });

  it('a worker shutting down mid-export hands the request back (queued, nacked) and leaves nothing', async () => {
    const controller = new AbortController();
    const { deps, directory } = await harness({ shutdown: controller.signal });
    const doc = request({ merchantId: 9, from: '2026-09-01', to: '2026-10-01' });
    const running = processRequest(data(doc), deps);
    for (let i = 0; i < 100 && (await readRequest(db.pool, String(doc.requestId)))?.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    expect(await running).toMatchObject({ verdict: 'nack', exitCode: 3, record: { status: 'queued', worker: null } });
    expect(await listFiles(directory)).toEqual([]);
  });

  it('records the rows written so far while the export runs (what `status` shows) and logs progress lines naming the request', async () => {
    // The zip of these 100,000 rows is about 2.5 MB: held at 256 KB, then at 768 KB, it is mid-export both times.
    const valve = new Valve(256 * 1024);
    const logs = captureLogs();
    const { deps, directory } = await harness({ progress: progressStarter({ mode: 'json', logger: logs.logger, intervalMs: 20 }) });
    const doc = request({ merchantId: 9, from: '2026-09-01', to: '2026-10-01' });
    const running = processRequest(data(doc), { ...deps, output: throughValve(deps.output, valve) });
    const record = async () => (await readRequest(db.pool, String(doc.requestId))) ?? ({ rows: null } as Partial<RequestRecord>);
    await until(async () => ((await record()).rows ?? 0) > 0, 'rows in the state table');
    const first = await record();
    expect(first.status).toBe('running');
    expect(first.rows).toBeLessThan(100_000);
    await until(() => logs.entries.some((entry) => entry.msg === 'export progress' && Number(entry.rows) > 0), 'a progress line');
    valve.widen(512 * 1024);
    await until(async () => ((await record()).rows ?? 0) > (first.rows ?? 0), 'more rows in the state table');
    const second = await record();
    expect(second.status).toBe('running');
    expect(second.rows).toBeLessThan(100_000);
    valve.widen(Infinity);
    expect(await running).toMatchObject({ exitCode: 0, record: { status: 'uploaded', rows: 100_000 } });
    expect(await listFiles(directory)).toHaveLength(1);
    const lines = logs.entries.filter((entry) => entry.msg === 'export progress');
    for (const line of lines) expect(line).toMatchObject({ requestId: doc.requestId, kind: 'conversations' });
    // Once rows flow, their total is known: the plan counted them first.
    for (const line of lines.filter((entry) => Number(entry.rows) > 0)) expect(line.totalRows).toBe(100_000);
    const rows = lines.map((line) => Number(line.rows));
    expect([...rows].sort((a, b) => a - b)).toEqual(rows);
    expect(lines.at(-1)).toMatchObject({ rows: 100_000, final: true });
  });

  it('lists a merchant\'s requests newest first', async () => {
    const records = await listRequests(db.pool, '1', 5);
    expect(records.length).toBe(5);
    const created = records.map((record) => record.createdAt);
    expect([...created].sort().reverse()).toEqual(created);
  });
});

describe('a request id is bound to its parameters', () => {
  /** A request of `doc` handed back at once (queued, attempt 1), then marked failed as a broken attempt leaves it. */
  async function failedRequest(deps: LifecycleDeps, doc: Record<string, unknown>): Promise<RequestRecord> {
    await processRequest(data(doc), { ...deps, shutdown: AbortSignal.abort() });
    await db.pool.query(`UPDATE audit_export_requests SET status = 'failed', error = 'database down', worker = NULL, finished_at = now() WHERE request_id = $1`, [
      doc.requestId,
    ]);
    return (await readRequest(db.pool, String(doc.requestId))) as RequestRecord;
  }

  it.each([
    ['merchant and range end', { merchantId: 2, to: '2026-10-30' }, 'merchantId, to'],
    ['range start', { from: '2026-09-02' }, 'from'],
    ['time zone', { timezone: 'UTC' }, 'timezone'],
    ['filters', { filters: { statuses: ['CLOSED'] } }, 'filters.statuses'],
    ['recipients', { recipients: ['bob@merchant.test'] }, 'recipients'],
    ['locale', { locale: 'es' }, 'locale'],
    ['CSV options', { csvBom: false }, 'csv.bom'],
    ['kind', { kind: 'stop-slots' }, 'kind'],
  ])('rejects a retry of a failed request with another %s and leaves the stored request alone', async (_name, change, fields) => {
    const logs = captureLogs();
    const { deps, directory, announced } = await harness({ logger: logs.logger });
    const doc = request({ recipients: ['ana@merchant.test'] });
    const stored = await failedRequest(deps, doc);
    const { csvBom, ...rest } = change as Record<string, unknown>;
    const other: Record<string, unknown> = { ...doc, ...rest };
    if (csvBom !== undefined) other.csv = { ...(doc.csv as object), bom: csvBom };
    if (other.kind === 'stop-slots') delete other.csv;

    const outcome = await processRequest(data(other), deps);
    expect(outcome).toMatchObject({ verdict: 'ack', exitCode: 2, record: { requestId: doc.requestId, status: 'rejected' } });
    expect(outcome.record.error).toBe(`requestId ${String(doc.requestId)} was already used with other parameters: ${fields}`);
    // Status, parameters, attempts, object: all as they were.
    expect(await readRequest(db.pool, String(doc.requestId))).toEqual(stored);
    expect(await listFiles(directory)).toEqual([]);
    expect(announced).toEqual([]);
    expect(logs.entries).toContainEqual(
      expect.objectContaining({ requestId: doc.requestId, msg: expect.stringMatching(/other parameters.*left alone/), fields: fields.split(', '), status: 'failed' }),
    );
    // The request itself is still what it was: its own document retries it.
    expect(await processRequest(data(doc), deps)).toMatchObject({ exitCode: 0, record: { status: 'delivered', attempts: 2 } });
  });

  it('rejects another request under the id of a delivered one, and an identical redelivery still does nothing more', async () => {
    const { deps, announced } = await harness();
    const doc = request({ recipients: ['ana@merchant.test'] });
    expect((await processRequest(data(doc), deps)).record.status).toBe('delivered');
    const stored = await readRequest(db.pool, String(doc.requestId));
    const other = await processRequest(data({ ...doc, merchantId: 2 }), deps);
    expect(other).toMatchObject({ verdict: 'ack', exitCode: 2, record: { status: 'rejected', uri: null, rows: null } });
    expect(other.record.error).toMatch(/was already used with other parameters: merchantId$/);
    expect(await readRequest(db.pool, String(doc.requestId))).toEqual(stored);
    expect(await processRequest(data(doc), deps)).toMatchObject({ verdict: 'ack', exitCode: 0, record: stored });
    expect(announced).toHaveLength(1);
  });

  it('takes a redelivery that only words the same parameters differently as the same request, and retries what was stored', async () => {
    const { deps, announced } = await harness();
    const doc = request({
      from: '2026-09-01T00:00:00-05:00',
      to: '2026-10-31T00:00:00-05:00',
      recipients: ['Ana@merchant.test', 'bob@merchant.test'],
      filters: { statuses: ['CLOSED', 'PICKED_UP'] },
      requestedBy: { userId: 'u-1' },
    });
    await failedRequest(deps, doc);
    // Same instants in another offset, recipients reordered and recased, statuses reordered, another requester.
    const reworded = {
      ...doc,
      from: '2026-09-01T05:00:00Z',
      to: '2026-10-31T05:00:00+00:00',
      recipients: ['BOB@merchant.test', 'ana@merchant.test'],
      filters: { statuses: ['picked_up', 'CLOSED'] },
      requestedBy: { userId: 'u-2' },
    };
    const outcome = await processRequest(data(reworded), deps);
    expect(outcome).toMatchObject({ verdict: 'ack', exitCode: 0, record: { status: 'delivered', attempts: 2 } });
    // The stored request ran: its recipients as written, its bounds as given.
    expect(announced).toHaveLength(1);
    expect(announced[0]?.recipients).toEqual(['Ana@merchant.test', 'bob@merchant.test']);
    expect(announced[0]?.parameters).toMatchObject({ from: '2026-09-01T00:00:00-05:00', to: '2026-10-31T00:00:00-05:00' });
    expect(outcome.record.request).toMatchObject({ requestedBy: { userId: 'u-1' } });
  });
});

/** `pool`, with its own queries (not those of the clients it lends) and its `connect` going through `hooks`. */
function interceptedPool(
  pool: pg.Pool,
  hooks: { query?: (text: string, run: () => Promise<pg.QueryResult>) => Promise<pg.QueryResult>; connect?: () => Promise<void> },
): pg.Pool {
  return new Proxy(pool, {
    get(target, property) {
      const { query, connect } = hooks;
      if (property === 'query' && query !== undefined) {
        return (text: string, values?: unknown[]) => query(text, () => target.query(text, values));
      }
      if (property === 'connect' && connect !== undefined) {
        return async () => {
          await connect();
          return await target.connect();
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('heartbeats of a running export', () => {
  it.each([
    ['uploaded', 'done', "SET status = 'uploaded'"],
    ['failed', 'failed', "SET status = 'failed'"],
    ['handed back at shutdown', 'cancelled', "SET status = 'queued'"],
  ] as const)('all settle before the export records its end (%s): none lands after it', async (ending, progressEnd, write) => {
    const events: string[] = [];
    let heartbeatSent!: () => void;
    const sent = new Promise<void>((resolve) => (heartbeatSent = resolve));
    let exportEnded!: () => void;
    const ended = new Promise<void>((resolve) => (exportEnded = resolve));
    const shutdown = new AbortController();
    const heartbeats: Promise<unknown>[] = [];
    const logs = captureLogs();
    const { deps } = await harness({ logger: logs.logger, heartbeatMs: 20, shutdown: shutdown.signal });
    // Every heartbeat is held until the export has ended, and a while more.
    const state = interceptedPool(db.pool, {
      query: async (text, run) => {
        if (text.includes('SET heartbeat_at = now(), rows')) {
          events.push('heartbeat sent');
          heartbeatSent();
          const held = (async () => {
            await ended;
            await new Promise((resolve) => setTimeout(resolve, 100));
            const result = await run();
            events.push(result.rowCount === 1 ? 'heartbeat settled' : 'heartbeat landed after the end');
            return result;
          })();
          heartbeats.push(held);
          return await held;
        }
        if (text.includes(write)) events.push('end recorded');
        return await run();
      },
    });
    // The export reads nothing before a heartbeat is on its way, so one is in flight when it ends.
    const source = interceptedPool(db.pool, {
      connect: async () => {
        await sent;
        if (ending === 'handed back at shutdown') shutdown.abort();
      },
    });
    const output: OutputTarget =
      ending === 'failed'
        ? { description: 'a full disk', find: async () => undefined, open: async () => Promise.reject(new Error('disk full')) }
        : deps.output;
    const progress = () => ({ mode: 'off' as const, update() {}, logNow() {}, end: (outcome: string) => (events.push(`export ${outcome}`), exportEnded()) });
    const doc = request();
    const outcome = await processRequest(data(doc), { ...deps, state, source, output, progress });
    // Whatever was still in flight when the delivery ended lands now, for the order below to show it.
    await Promise.all(heartbeats);
    expect(outcome.record.status).toBe(ending === 'handed back at shutdown' ? 'queued' : ending);
    const collapsed = events.filter((event, index) => event !== events[index - 1]);
    expect(collapsed).toEqual(['heartbeat sent', `export ${progressEnd}`, 'heartbeat settled', 'end recorded']);
    expect(logs.entries.filter((entry) => /lease lost|cancelled or taken over/.test(String(entry.msg)))).toEqual([]);
  });
});

describe('the pools of a worker running several exports at once', () => {
  it('sizes each pool from --concurrency: a snapshot and a heartbeat per export, plus 2', () => {
    expect(lifecyclePoolSizes(1, false)).toEqual({ source: 3, state: 3 });
    expect(lifecyclePoolSizes(8, false)).toEqual({ source: 10, state: 10 });
    // One pool for both databases: both shares.
    expect(lifecyclePoolSizes(1, true)).toEqual({ source: 4, state: 4 });
    expect(lifecyclePoolSizes(8, true)).toEqual({ source: 18, state: 18 });
  });

  it('keeps renewing every lease while --concurrency exports hold their snapshots (regression: 4 connections starved the heartbeats)', async () => {
    const concurrency = 4;
    const directory = await temporaryDirectory();
    const env = { DATABASE_URL: db.url, OUTPUT_URI: `file://${directory}`, MAX_ACTIVE_EXPORTS_PER_MERCHANT: '10', HEARTBEAT_MS: '50' };
    const lifecycle = await openLifecycle(silentLogger, new AbortController().signal, { allowEmbedded: false, concurrency }, env);
    // One valve per export: each holds its snapshot, mid-stream, until the end of the test.
    const valves = Array.from({ length: concurrency }, () => new Valve(64 * 1024));
    let running: Promise<unknown>[] = [];
    try {
      // The state database is the source one here: one pool serves the snapshots and the heartbeats.
      const streaming = new Set<string>();
      const progress = (spec: { requestId?: string }) => ({
        mode: 'off' as const,
        update: (update: { rows?: number }) => void ((update.rows ?? 0) > 0 && streaming.add(String(spec.requestId))),
        logNow() {},
        end() {},
      });
      const docs = Array.from({ length: concurrency }, () => request({ merchantId: 9, from: '2026-09-01', to: '2026-10-01' }));
      const ids = docs.map((doc) => String(doc.requestId));
      const outcomes = docs.map((doc, index) =>
        processRequest(data(doc), { ...lifecycle.deps, output: throughValve(lifecycle.deps.output, valves[index] as Valve), progress }),
      );
      running = outcomes;
      const beats = async (): Promise<number[]> =>
        (
          await db.pool.query<{ heartbeat_at: Date | null; status: string }>(
            'SELECT heartbeat_at, status FROM audit_export_requests WHERE request_id = ANY($1) ORDER BY request_id',
            [ids],
          )
        ).rows.map((row) => (row.status === 'running' && row.heartbeat_at !== null ? row.heartbeat_at.getTime() : 0));
      await until(() => streaming.size === concurrency, 'every export streaming');
      const before = await beats();
      let renewed = false;
      for (let i = 0; i < 100 && !renewed; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        renewed = (await beats()).every((at, index) => at > (before[index] as number));
      }
      expect(renewed, 'every running export renewed its lease within 2 s').toBe(true);
      // More than the old fixed 4 connections are open, and no more than the pool's size.
      expect(lifecycle.pools).toEqual({ source: 2 * concurrency + 2, state: 2 * concurrency + 2 });
      const { rows: sessions } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'audit-export'
           AND backend_type = 'client backend'`,
      );
      expect(sessions[0]?.n).toBeGreaterThan(4);
      expect(sessions[0]?.n).toBeLessThanOrEqual(lifecycle.pools.source);
      for (const valve of valves) valve.widen(Infinity);
      expect((await Promise.all(outcomes)).map((outcome) => outcome.record.status)).toEqual(docs.map(() => 'uploaded'));
    } finally {
      for (const valve of valves) valve.widen(Infinity);
      await Promise.allSettled(running);
      await lifecycle.close();
    }
  });
});
