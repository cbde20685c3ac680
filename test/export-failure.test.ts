import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { runConversationExport } from '../jobs/conversations/job.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { isAbortError } from '../jobs/errors.js';
import { FileOutputTarget } from '../sinks/file.js';
import type { OutputTarget, PendingObject } from '../sinks/output.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, silentLogger, temporaryDirectory } from './support/export.js';
import { loadVolume } from './support/volume.js';

const db = useTestDatabase();
const MERCHANT = 9;
beforeAll(() => loadVolume(db.pool, MERCHANT, 400, 50), 120_000);

const request = (format: 'csv' | 'xlsx' = 'csv') => parseConversationRequest({ merchantId: MERCHANT, from: '2026-09-01', to: '2026-10-01', format });

/** Wraps a target so that `onChunk` sees every chunk the sink receives, with the count so far. */
function observedTarget(inner: OutputTarget, onChunk: (count: number) => void): OutputTarget {
  return {
    description: inner.description,
    find: (name) => inner.find(name),
    async open(description): Promise<PendingObject> {
      const object = await inner.open(description);
      let count = 0;
      const stream = new Writable({
        highWaterMark: 16 * 1024,
        write(chunk: Buffer, _encoding, callback) {
          count += 1;
          try {
            onChunk(count);
          } catch (error) {
            callback(error as Error);
            return;
          }
          if (object.stream.write(chunk)) callback();
          else object.stream.once('drain', () => callback());
        },
        final(callback) {
          object.stream.end(callback);
        },
        destroy(error, callback) {
          object.stream.destroy();
          callback(error);
        },
      });
      return { stream, commit: () => object.commit(), discard: () => object.discard() };
    },
  };
}

/** The connection still works, and no session of this database is left in a COPY. */
async function expectDatabaseHealthy(): Promise<void> {
  for (let i = 0; i < 8; i++) expect((await db.pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  // A destroyed connection's backend ends when it next writes to the closed socket: give it a moment.
  const deadline = Date.now() + 5_000;
  let copies = -1;
  while (Date.now() < deadline) {
    const { rows } = await db.pool.query<{ copies: number }>(
      `SELECT count(*)::int AS copies FROM pg_stat_activity
       WHERE datname = current_database() AND state = 'active' AND query LIKE 'COPY%'`,
    );
    copies = rows[0]?.copies ?? -1;
    if (copies === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(copies).toBe(0);
}

describe.each(['csv', 'xlsx'] as const)('a failing or aborted export (%s)', (format) => {
  it('leaves no file when the sink fails mid-stream, and the database stays usable', async () => {
    const directory = await temporaryDirectory();
    const target = observedTarget(new FileOutputTarget(directory), (count) => {
      if (count === 3) throw new Error('disk on fire');
    });
    await expect(
      runConversationExport(request(format), { pool: db.pool, output: target, signal: new AbortController().signal, logger: silentLogger }),
    ).rejects.toThrow('disk on fire');
    expect(await listFiles(directory)).toEqual([]);
    await expectDatabaseHealthy();
  });

  it('stops on abort with an AbortError, leaves no file, and the database stays usable', async () => {
    const directory = await temporaryDirectory();
    const controller = new AbortController();
    const target = observedTarget(new FileOutputTarget(directory), (count) => {
      if (count === 2) controller.abort();
    });
    const error = await runConversationExport(request(format), {
      pool: db.pool,
      output: target,
      signal: controller.signal,
      logger: silentLogger,
    }).catch((caught: unknown) => caught);
    expect(isAbortError(error)).toBe(true);
    expect(await listFiles(directory)).toEqual([]);
    await expectDatabaseHealthy();
  });

  it('still exports completely after those failures', async () => {
    const directory = await temporaryDirectory();
    const { summary } = await runConversationExport(request(format), {
      pool: db.pool,
      output: new FileOutputTarget(directory),
      signal: new AbortController().signal,
      logger: silentLogger,
    });
    expect(summary.rows).toBe(400 * 50);
    expect(await listFiles(directory)).toEqual([summary.uri.split('/').pop()]);
    expect(summary.uri.endsWith(`.${format === 'csv' ? 'zip' : 'xlsx'}`)).toBe(true);
  });
});

describe('an existing export', () => {
  it('refuses to overwrite an existing export and leaves the existing file as it was', async () => {
    const directory = await temporaryDirectory();
    const output = new FileOutputTarget(directory);
    const context = { pool: db.pool, output, signal: new AbortController().signal, logger: silentLogger };
    const fixed = parseConversationRequest({ merchantId: MERCHANT, from: '2026-09-01', to: '2026-09-02', requestId: 'same-id' });
    const { summary: first } = await runConversationExport(fixed, context);
    await expect(runConversationExport(fixed, context)).rejects.toThrow(/already exists/);
    expect(await listFiles(directory)).toEqual([first.uri.split('/').pop()]);
  });
});
