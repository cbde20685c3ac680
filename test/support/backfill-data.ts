import type pg from 'pg';

/** 6 merchants (Bogota), each with 2 chats of 3 messages in each of September, October, November 2026. */
export async function seedBackfillData(pool: pg.Pool): Promise<void> {
  await pool.query(`INSERT INTO merchants (id, name) SELECT m, 'Merchant ' || m FROM generate_series(1, 6) AS m`);
  await pool.query(`INSERT INTO contacts (id, merchant_id, name) SELECT m * 1000, m, 'Contact ' || m FROM generate_series(1, 6) AS m`);
  await pool.query(
    `INSERT INTO chats (id, merchant_id, provider, contact_id, status, created_at, closed_at)
     SELECT m * 1000 + mo * 10 + c, m, 'whatsapp', m * 1000, CASE WHEN c = 1 THEN 'CLOSED' ELSE 'OPENED' END,
            timestamptz '2026-09-10T15:00:00Z' + (mo - 1) * interval '1 month' + c * interval '1 hour',
            CASE WHEN c = 1 THEN timestamptz '2026-09-10T18:00:00Z' + (mo - 1) * interval '1 month' END
     FROM generate_series(1, 6) AS m, generate_series(1, 3) AS mo, generate_series(1, 2) AS c`,
  );
  await pool.query(
    `INSERT INTO messages (id, chat_id, created_at, sender, type, body)
     SELECT ch.id * 10 + k, ch.id, ch.created_at + k * interval '1 minute', CASE WHEN k % 2 = 0 THEN 'contact' ELSE 'agent' END, 'text', 'hello ' || k
     FROM chats AS ch, generate_series(1, 3) AS k`,
  );
}

/** The zip names of every unit of {@link seedBackfillData}'s merchants over September to November 2026, sorted. */
export const BACKFILL_UNIT_NAMES: readonly string[] = [1, 2, 3, 4, 5, 6].flatMap((m) =>
  ['2026-09-01_2026-10-01_backfill-m' + m + '-2026-09', '2026-10-01_2026-11-01_backfill-m' + m + '-2026-10', '2026-11-01_2026-12-01_backfill-m' + m + '-2026-11'].map(
    (tail) => `conversations_merchant-${m}_${tail}.zip`,
  ),
);
