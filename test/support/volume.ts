import type pg from 'pg';

/**
 * Adds a merchant with `chats` chats of `messagesPerChat` messages each, bodies of about 200
 * characters, all inside September 2026: enough bytes that a COPY is still streaming when a test
 * interrupts it.
 */
export async function loadVolume(pool: pg.Pool, merchantId: number, chats: number, messagesPerChat: number): Promise<void> {
  const idBase = merchantId * 10_000_000;
  await pool.query(`INSERT INTO merchants (id, name) VALUES ($1, 'Volume merchant')`, [merchantId]);
  await pool.query(`INSERT INTO contacts (id, merchant_id, name) VALUES ($1, $2, 'Volume contact')`, [idBase, merchantId]);
  await pool.query(
    `INSERT INTO chats (id, merchant_id, provider, contact_id, status, created_at, closed_at)
     SELECT $2 + g, $1, 'whatsapp', $2, 'CLOSED', timestamptz '2026-09-02T00:00:00Z' + g * interval '1 minute',
            timestamptz '2026-09-02T00:00:00Z' + g * interval '1 minute' + interval '1 hour'
     FROM generate_series(1, $3::int) AS g`,
    [merchantId, idBase, chats],
  );
  await pool.query(
    `INSERT INTO messages (id, chat_id, created_at, sender, type, body)
     SELECT $1::bigint + (c - 1) * $3::int + m, $1::bigint + c, timestamptz '2026-09-02T00:00:00Z' + c * interval '1 minute' + m * interval '1 second',
            CASE WHEN m % 2 = 0 THEN 'contact' ELSE 'agent' END, 'text',
            repeat(md5((c * 1000 + m)::text), 6)
     FROM generate_series(1, $2::int) AS c, generate_series(1, $3::int) AS m`,
    [idBase, chats, messagesPerChat],
  );
}
