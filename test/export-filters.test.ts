import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.js';
import { exportConversations, parseCsv } from './support/export.js';
import { loadFixture } from './support/fixture.js';

const db = useTestDatabase();
beforeAll(() => loadFixture(db.pool));

const base = { merchantId: 1, from: '2026-09-01', to: '2026-10-31' };

/** The distinct chat ids of an export, in export order. */
async function chatsOf(filters: Record<string, unknown>): Promise<string[]> {
  const { csvFiles } = await exportConversations(db.pool, { ...base, filters });
  const rows = parseCsv([...csvFiles.values()][0]!).slice(1);
  return [...new Set(rows.map((row) => row[0] as string))];
}

describe('conversation export filters', () => {
  it('exports every status and only chats with messages when unfiltered', async () => {
    expect(await chatsOf({})).toEqual(['1000', '1001', '1002', '1007', '1003']);
  });

  it.each([
    [{ agentIds: ['100'] }, ['1000', '1003']],
    [{ agentIds: ['100', '101'] }, ['1000', '1002', '1003']],
    [{ providers: ['web'] }, ['1002']],
    [{ providers: ['whatsapp', 'telegram'] }, ['1000', '1003']],
    [{ aliases: ['sales'] }, ['1000']],
    [{ aliases: ['sales', 'support'] }, ['1000', '1002']],
    [{ statuses: ['CLOSED'] }, ['1000', '1001', '1003']],
    [{ statuses: ['OPENED', 'CLOSED'] }, ['1000', '1001', '1002', '1003']],
    [{ statuses: ['PICKED_UP', 'CLOSED'] }, ['1000', '1001', '1007', '1003']],
    [{ agentIds: ['100'], providers: ['telegram'] }, ['1003']],
    [{ agentIds: ['101'], statuses: ['CLOSED'] }, []],
    [{ providers: ["x' OR 1=1 --"] }, []],
  ])('%j selects %j', async (filters, chats) => {
    expect(await chatsOf(filters)).toEqual(chats);
  });
});

describe('merchant isolation', () => {
  it("never writes another merchant's rows, even with filters that match them", async () => {
    const { csvFiles } = await exportConversations(db.pool, { ...base, filters: { agentIds: ['200'] } });
    expect(parseCsv([...csvFiles.values()][0]!).slice(1)).toEqual([]);
    const all = await exportConversations(db.pool, base);
    const text = [...all.csvFiles.values()][0]!.toString('utf8');
    expect(text).not.toContain('secret of merchant 2');
    expect(text).not.toContain('Other Person');
  });

  it("does not join a contact, agent or bot of another merchant into a chat's rows", async () => {
    await db.pool.query(`
      INSERT INTO chats (id, merchant_id, provider, contact_id, agent_id, bot_id, status, created_at)
        VALUES (1100, 1, 'web', 20, 200, 6, 'CLOSED', '2026-10-01T12:00:00Z');
      INSERT INTO messages (id, chat_id, created_at, sender, type, body)
        VALUES (1101, 1100, '2026-10-01T12:00:01Z', 'contact', 'text', 'crossed wires');`);
    try {
      const { csvFiles } = await exportConversations(db.pool, { ...base, filters: { providers: ['web'] } });
      const rows = parseCsv([...csvFiles.values()][0]!).slice(1);
      const crossed = rows.find((row) => row[0] === '1100');
      expect(crossed?.slice(5, 15)).toEqual(['20', '', '', '', '', '', '200', '', '', '']);
      expect(crossed?.[21]).toBe('');
    } finally {
      await db.pool.query('DELETE FROM messages WHERE chat_id = 1100; DELETE FROM chats WHERE id = 1100;');
    }
  });
});

describe('an export with no matching rows', () => {
  it('delivers one CSV with the header only', async () => {
    const { summary, csvFiles } = await exportConversations(db.pool, { ...base, from: '2026-01-01', to: '2026-01-31' });
    expect(summary.rows).toBe(0);
    expect(summary.files).toHaveLength(1);
    const bytes = [...csvFiles.values()][0]!;
    expect(bytes.toString('utf8')).toMatch(/^\uFEFFChat ID,.*,Duration\r\n$/);
  });
});
