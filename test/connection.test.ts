import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { checkOut, createPool } from '../db/connection.js';
import { useTestDatabase } from './support/database.js';

const db = useTestDatabase();

/** A pool of its own application name (so its sessions can be told apart), and the clients it connected. */
function ownPool(onError: (error: Error) => void = () => {}): { pool: pg.Pool; applicationName: string; closed: () => boolean[] } {
  const applicationName = `audit-export-conn-${randomUUID().slice(0, 8)}`;
  const pool = createPool(db.url, { applicationName }, onError);
  const sockets: { closed: boolean }[] = [];
  pool.on('connect', (client) => {
    const socket = { closed: false };
    sockets.push(socket);
    // The connection's socket is closed: what a server stopped afterwards must see.
    (client as unknown as pg.Client).connection.stream.once('close', () => (socket.closed = true));
  });
  return { pool, applicationName, closed: () => sockets.map((socket) => socket.closed) };
}

async function sessions(applicationName: string): Promise<number> {
  const { rows } = await db.pool.query<{ count: number }>(
    // Parallel workers inherit the leader's application_name: count client sessions only.
    "SELECT count(*)::int AS count FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
    [applicationName],
  );
  return rows[0]?.count ?? -1;
}

describe('a pool from createPool', () => {
  it('resolves end() once every connection is closed, so a server stopped next has no session of it to terminate', async () => {
    const { pool, applicationName, closed } = ownPool();
    await Promise.all([1, 2, 3, 4].map(() => pool.query('SELECT pg_sleep(0.02)')));
    expect(await sessions(applicationName)).toBe(4);
    await pool.end();
    expect(closed()).toEqual([true, true, true, true]);
    expect(await sessions(applicationName)).toBe(0);
  });

  it('waits for a borrowed client to come back before it ends', async () => {
    const { pool, closed } = ownPool();
    const borrowed = await checkOut(pool);
    let ended = false;
    const ending = pool.end().then(() => (ended = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ended).toBe(false);
    borrowed.release();
    await ending;
    expect(closed()).toEqual([true]);
  });

  it('reports an error of a client no one listens to instead of throwing it', async () => {
    const errors: Error[] = [];
    const { pool, applicationName } = ownPool((error) => errors.push(error));
    // Borrowed without checkOut: nothing listens to this client's `error` event.
    const client = await pool.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
    await vi.waitFor(() => expect(errors.map((error) => (error as Error & { code?: string }).code)).toContain('57P01'));
    client.release(true);
    await pool.end();
    expect(await sessions(applicationName)).toBe(0);
  });
});
