import { beforeAll, describe, expect, it } from 'vitest';
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
