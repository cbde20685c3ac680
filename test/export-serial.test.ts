import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { conversationCopySql } from '../jobs/conversations/query.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { resolveConversationExport } from '../jobs/conversations/resolve.js';
import { withReadOnlySnapshot } from '../sources/postgres-snapshot.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations } from './support/export.js';
import { loadFixture } from './support/fixture.js';

const db = useTestDatabase();
const request = { merchantId: 1, from: '2026-09-01', to: '2026-10-31' };
let serverVersion = 0;

beforeAll(async () => {
  await loadFixture(db.pool);
  const { rows } = await db.pool.query<{ version: string }>(`SELECT current_setting('server_version_num') AS version`);
  serverVersion = Number(rows[0]!.version);
});

async function workersLaunched(): Promise<number> {
  const { rows } = await db.pool.query<{ launched: string }>(
    `SELECT parallel_workers_launched AS launched FROM pg_stat_database WHERE datname = current_database()`,
  );
  return Number(rows[0]!.launched);
}

/** The export's rows as a COPY run outside the export, in a transaction of its own. */
async function copyOutsideTheExport(pool: pg.Pool): Promise<void> {
  await withReadOnlySnapshot(pool, async (session) => {
    const resolved = await resolveConversationExport(session, parseConversationRequest(request));
    const chunks: Buffer[] = [];
    for await (const chunk of session.copyOut(conversationCopySql(resolved, { chatSizes: false })) as AsyncIterable<Buffer>) chunks.push(chunk);
    expect(Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean)).toHaveLength(10);
  });
}

/**
 * Parallel workers launched by what `work` ran on one connection that gives every parallel-safe
 * plan a Gather with a worker (`debug_parallel_query`): what a large table does to the export's
 * query once no window function keeps it serial.
 */
async function launchedBy(work: (pool: pg.Pool) => Promise<void>): Promise<number> {
  const before = await workersLaunched();
  const pool = new pg.Pool({ connectionString: db.url, max: 1, options: '-c debug_parallel_query=on' });
  try {
    await work(pool);
  } finally {
    // The backend exits, which flushes its statistics.
    await pool.end();
  }
  for (let attempt = 0; attempt < 100 && (await workersLaunched()) === before; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return (await workersLaunched()) - before;
}

describe('the export query on one backend', () => {
  it('runs every query of the export without parallel workers, where the same COPY outside it gets one', async (context) => {
    // pg_stat_database counts launched workers from PostgreSQL 18 on (the suite's embedded server).
    if (serverVersion < 180000) context.skip();
    // Its queries (the merchant's zone, the rows) get a worker each.
    const outside = await launchedBy(copyOutsideTheExport);
    expect(outside).toBeGreaterThanOrEqual(2);
    // The same backend then runs the export and that COPY again, and both flush their statistics
    // at its exit: a count equal to the COPY's alone leaves none for the export.
    const launched = await launchedBy(async (pool) => {
      const { summary } = await exportConversations(pool, request);
      expect(summary.rows).toBe(10);
      await copyOutsideTheExport(pool);
    });
    expect(launched).toBe(outside);
  });
});
