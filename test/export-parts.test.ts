import { beforeAll, describe, expect, it } from 'vitest';
import { conversationCopySql } from '../jobs/conversations/query.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { resolveConversationExport } from '../jobs/conversations/resolve.js';
import { withReadOnlySnapshot } from '../sources/postgres-snapshot.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations, parseCsv } from './support/export.js';
import { loadFixture } from './support/fixture.js';

const db = useTestDatabase();
beforeAll(() => loadFixture(db.pool));

const base = { merchantId: 1, from: '2026-09-01', to: '2026-10-31' };
const name = (part: number): string => `conversations_merchant-1_2026-09-01_2026-10-31-part-00${part}.csv`;

/** Per CSV file of the export: its name and the chat id of each data row; every file has the header. */
async function partsOf(rowsPerFile: number): Promise<[string, string[]][]> {
  const { summary, csvFiles } = await exportConversations(db.pool, { ...base, csv: { rowsPerFile } });
  expect([...csvFiles.keys()]).toEqual(summary.files);
  return [...csvFiles.entries()].map(([file, bytes]) => {
    const [header, ...rows] = parseCsv(bytes);
    expect(header?.[0]).toBe('Chat ID');
    expect(bytes.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    return [file, rows.map((row) => row[0] as string)];
  });
}

describe('splitting an export into parts', () => {
  it('breaks between chats, numbering the parts in export order', async () => {
    // Chats in order: 1000 (4 rows), 1001 (3), 1002 (1), 1007 (1), 1003 (1).
    expect(await partsOf(4)).toEqual([
      [name(1), ['1000', '1000', '1000', '1000']],
      [name(2), ['1001', '1001', '1001', '1002']],
      [name(3), ['1007', '1003']],
    ]);
  });

  it('gives a chat larger than the limit whole parts and lets the next chat continue the last one', async () => {
    expect(await partsOf(3)).toEqual([
      [name(1), ['1000', '1000', '1000']],
      [name(2), ['1000']],
      [name(3), ['1001', '1001', '1001']],
      [name(4), ['1002', '1007', '1003']],
    ]);
  });

  it('writes a single part without a suffix when everything fits', async () => {
    const parts = await partsOf(10);
    expect(parts.map(([file]) => file)).toEqual(['conversations_merchant-1_2026-09-01_2026-10-31.csv']);
    expect(parts[0]![1]).toHaveLength(10);
  });
});

describe('the chat sizes the query reads', () => {
  async function copyLines(request: unknown, chatSizes?: boolean): Promise<string[][]> {
    return await withReadOnlySnapshot(db.pool, async (session) => {
      const resolved = await resolveConversationExport(session, parseConversationRequest(request));
      const sql = chatSizes === undefined ? conversationCopySql(resolved) : conversationCopySql(resolved, { chatSizes });
      const chunks: Buffer[] = [];
      for await (const chunk of session.copyOut(sql) as AsyncIterable<Buffer>) chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('utf8');
      return text.split('\n').filter((line) => line.length > 0).map((line) => line.split('\t'));
    });
  }

  it('counts each chat\'s rows by default, and reads NULL there without the window, the rest unchanged', async () => {
    const counted = await copyLines(base);
    const uncounted = await copyLines(base, false);
    expect(counted).toHaveLength(10);
    // Chat 1000 has 4 rows in the fixture, chat 1001 3.
    expect(counted.filter((line) => line[0] === '1000').map((line) => line.at(-1))).toEqual(['4', '4', '4', '4']);
    expect(counted.filter((line) => line[0] === '1001').map((line) => line.at(-1))).toEqual(['3', '3', '3']);
    expect(uncounted.map((line) => line.at(-1))).toEqual(Array(10).fill('\\N'));
    expect(uncounted.map((line) => line.slice(0, -1))).toEqual(counted.map((line) => line.slice(0, -1)));
    expect(await copyLines(base, true)).toEqual(counted);
  });

  it('leaves the window out of the SQL only when told, and names a bad option', async () => {
    await withReadOnlySnapshot(db.pool, async (session) => {
      const resolved = await resolveConversationExport(session, parseConversationRequest(base));
      expect(conversationCopySql(resolved)).toContain('count(*) OVER (PARTITION BY c.created_at, c.id)');
      expect(conversationCopySql(resolved, { chatSizes: false })).not.toContain('OVER');
      expect(() => conversationCopySql(resolved, { chatSizes: 'no' as unknown as boolean })).toThrow(
        new TypeError('Expected `chatSizes` to be a boolean, got string'),
      );
    });
  });

  it('writes the same single part with or without the sizes: the CSV of an unsplit export is unchanged', async () => {
    // 10 rows, 10 per file: one part, read without the window; 9 per file: two parts, with it.
    const single = await exportConversations(db.pool, { ...base, csv: { rowsPerFile: 10 } });
    const split = await exportConversations(db.pool, { ...base, csv: { rowsPerFile: 9 } });
    expect(single.summary.files).toHaveLength(1);
    expect(split.summary.files).toHaveLength(2);
    const rowsOf = (files: Map<string, Buffer>): string[][] => [...files.values()].flatMap((bytes) => parseCsv(bytes).slice(1));
    expect(rowsOf(single.csvFiles)).toEqual(rowsOf(split.csvFiles));
  });
});
