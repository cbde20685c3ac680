import { describe, expect, it } from 'vitest';
import { migrate } from '../db/migrate.js';
import { useTestDatabase } from './support/database.js';

const db = useTestDatabase();

describe('db migrate', () => {
  it('creates exactly the contract tables and columns', async () => {
    const { rows } = await db.pool.query<{ table_name: string; columns: string }>(`
      SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) AS columns
      FROM information_schema.columns WHERE table_schema = 'public' GROUP BY table_name ORDER BY table_name`);
    expect(Object.fromEntries(rows.map((r) => [r.table_name, r.columns]))).toEqual({
      agents: 'id bigint, merchant_id bigint, name text, username text, email text',
      bot_slots: 'id bigint, bot_id bigint, name text, text text',
      bots: 'id bigint, merchant_id bigint, name text',
      chats:
        'id bigint, merchant_id bigint, provider text, alias text, contact_id bigint, agent_id bigint, bot_id bigint, ' +
        'status text, created_at timestamp with time zone, opened_at timestamp with time zone, ' +
        'picked_up_at timestamp with time zone, closed_at timestamp with time zone',
      contacts: 'id bigint, merchant_id bigint, identification text, name text, email text, phone_number text, mobile_number text',
      merchants: 'id bigint, name text, timezone text',
      messages:
        'id bigint, chat_id bigint, created_at timestamp with time zone, sender text, type text, body text, ' +
        'media_url text, caption text, bot_slot_id bigint',
    });
  });

  it('runs again, also concurrently, without error', async () => {
    const clients = await Promise.all([db.pool.connect(), db.pool.connect(), db.pool.connect()]);
    try {
      await Promise.all(clients.map((client) => migrate(client)));
    } finally {
      for (const client of clients) client.release();
    }
    const { rows } = await db.pool.query(`SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_idx' ORDER BY indexname`);
    expect(rows).toEqual([
      { indexname: 'chats_merchant_created_idx' },
      { indexname: 'messages_chat_bot_created_idx' },
      { indexname: 'messages_chat_created_idx' },
    ]);
  });
});
