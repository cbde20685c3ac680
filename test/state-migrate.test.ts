import { describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import { useTestDatabase } from './support/database.js';

const db = useTestDatabase();

async function deliveryColumns(): Promise<string> {
  const { rows } = await db.pool.query<{ columns: string }>(`
    SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) AS columns
    FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'audit_export_deliveries'`);
  return rows[0]?.columns ?? '';
}

describe('db migrate (state)', () => {
  it('creates the deliveries table keyed by request and recipient, also when run concurrently on a fresh database', async () => {
    // Without the advisory lock, concurrent CREATE TABLE IF NOT EXISTS races on the catalog.
    await Promise.all([migrateState(db.pool), migrateState(db.pool), migrateState(db.pool), migrateState(db.pool)]);
    expect(await deliveryColumns()).toBe(
      'request_id text, recipient text, status text, attempts integer, claim_token uuid, ' +
        'claimed_at timestamp with time zone, smtp_response text, message_id text, last_error text, ' +
        'sent_at timestamp with time zone, created_at timestamp with time zone, updated_at timestamp with time zone',
    );
    const { rows } = await db.pool.query<{ columns: string }>(`
      SELECT string_agg(a.attname, ', ' ORDER BY k.ord) AS columns
      FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = 'audit_export_deliveries'::regclass AND i.indisprimary`);
    expect(rows[0]?.columns).toBe('request_id, recipient');
  });

  it('runs again, also concurrently, and keeps the rows', async () => {
    await migrateState(db.pool);
    await db.pool.query(
      `INSERT INTO audit_export_deliveries (request_id, recipient, status, attempts, sent_at) VALUES ('r-keep', 'a@example.com', 'sent', 1, now())`,
    );
    await Promise.all([migrateState(db.pool), migrateState(db.pool), migrateState(db.pool), migrateState(db.pool)]);
    const { rows } = await db.pool.query(`SELECT request_id, recipient, status FROM audit_export_deliveries WHERE request_id = 'r-keep'`);
    expect(rows).toEqual([{ request_id: 'r-keep', recipient: 'a@example.com', status: 'sent' }]);
    expect(await deliveryColumns()).toContain('request_id text, recipient text, status text');
  });

  it('refuses an unknown status, a sending row without a claim token and a sent row without a time', async () => {
    await migrateState(db.pool);
    const insert = (status: string, token: string | null, sentAt: string | null) =>
      db.pool.query(
        `INSERT INTO audit_export_deliveries (request_id, recipient, status, claim_token, claimed_at, sent_at)
         VALUES ('r-check', $1, $2, $3, now(), $4)`,
        [`${status}-${token ?? 'none'}@example.com`, status, token, sentAt],
      );
    await expect(insert('delivered', null, null)).rejects.toThrow(/check constraint/);
    await expect(insert('sending', null, null)).rejects.toThrow(/audit_export_deliveries_claim_check/);
    await expect(insert('sent', '7f1c6a49-5d5c-4c1e-9a4e-3f1f2b0c9d11', '2026-11-21T00:00:00Z')).rejects.toThrow(
      /audit_export_deliveries_claim_check/,
    );
    await expect(insert('sent', null, null)).rejects.toThrow(/audit_export_deliveries_sent_at_check/);
    await expect(insert('sending', '7f1c6a49-5d5c-4c1e-9a4e-3f1f2b0c9d11', null)).resolves.toBeDefined();
  });

  it("adds the status 'expired' to a requests table made before it existed, once, keeping the rows and the other statuses' check", async () => {
    await migrateState(db.pool);
    // The table as an earlier release created it.
    await db.pool.query(`
      ALTER TABLE audit_export_requests DROP CONSTRAINT audit_export_requests_status_check;
      ALTER TABLE audit_export_requests ADD CONSTRAINT audit_export_requests_status_check
        CHECK (status IN ('queued', 'running', 'uploaded', 'delivered', 'failed', 'cancelled', 'rejected', 'coalesced'))`);
    await db.pool.query(`INSERT INTO audit_export_requests (request_id, kind, status) VALUES ('r-old', 'conversations', 'delivered')`);
    const expire = () => db.pool.query(`UPDATE audit_export_requests SET status = 'expired' WHERE request_id = 'r-old'`);
    await expect(expire()).rejects.toThrow(/audit_export_requests_status_check/);

    await Promise.all([migrateState(db.pool), migrateState(db.pool), migrateState(db.pool)]);
    await expect(expire()).resolves.toMatchObject({ rowCount: 1 });
    await expect(db.pool.query(`UPDATE audit_export_requests SET status = 'gone' WHERE request_id = 'r-old'`)).rejects.toThrow(
      /audit_export_requests_status_check/,
    );
    const constraints = async () =>
      (await db.pool.query<{ oid: number }>(`SELECT oid FROM pg_constraint WHERE conname = 'audit_export_requests_status_check'`)).rows;
    const before = await constraints();
    expect(before).toHaveLength(1);
    // Already there: migrating again leaves the constraint as it is (no drop, no table scan).
    await migrateState(db.pool);
    expect(await constraints()).toEqual(before);
  });
});
