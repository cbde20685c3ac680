import { beforeAll, describe, expect, it } from 'vitest';
import { CONVERSATION_HEADERS } from '../transforms/conversation-row.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations, parseCsv } from './support/export.js';
import { FIXTURE_EXPECTED_ROWS, loadFixture } from './support/fixture.js';

const db = useTestDatabase();
beforeAll(() => loadFixture(db.pool));

const request = { merchantId: 1, from: '2026-09-01', to: '2026-10-31', requestId: 'fixture-1' };

describe('conversation export of the hand-built fixture', () => {
  it('writes exactly the expected cells, in order', async () => {
    const { summary, csvFiles } = await exportConversations(db.pool, request);
    expect([...csvFiles.keys()]).toEqual(['conversations_merchant-1_2026-09-01_2026-10-31.csv']);
    const [header, ...rows] = parseCsv([...csvFiles.values()][0]!);
    expect(header).toEqual(CONVERSATION_HEADERS);
    expect(rows).toEqual(FIXTURE_EXPECTED_ROWS);
    expect(summary).toMatchObject({
      requestId: 'fixture-1',
      kind: 'conversations',
      rows: FIXTURE_EXPECTED_ROWS.length,
      files: ['conversations_merchant-1_2026-09-01_2026-10-31.csv'],
    });
    expect(summary.uri).toMatch(/^file:\/\/\/.*\/conversations_merchant-1_2026-09-01_2026-10-31_fixture-1\.zip$/);
  });

  it('writes the bytes the format promises: BOM, CRLF after every record, LF inside cells, quoting', async () => {
    const { csvFiles } = await exportConversations(db.pool, { ...request, requestId: 'fixture-bytes' });
    const text = [...csvFiles.values()][0]!.toString('utf8');
    expect(text.startsWith('\uFEFFChat ID,Merchant ID,Provider,')).toBe(true);
    expect(text.endsWith('\r\n')).toBe(true);
    const records = text.slice(1).split('\r\n');
    expect(records).toHaveLength(FIXTURE_EXPECTED_ROWS.length + 2);
    expect(records[1]).toContain(',"Ana, ""La Jefa""",');
    expect(records[1]).toContain(',true,"Hola, ""amigo""\nline2",,text,');
    expect(records[6]).toContain(',"  spaced  ",');
    expect(text).not.toMatch(/\r(?!\n)/);
  });

  it('drops the BOM and the formula guard when asked', async () => {
    const { csvFiles } = await exportConversations(db.pool, {
      ...request,
      requestId: 'fixture-raw',
      csv: { bom: false, formulaGuard: false },
    });
    const bytes = [...csvFiles.values()][0]!;
    expect(bytes.subarray(0, 7).toString()).toBe('Chat ID');
    const rows = parseCsv(bytes).slice(1);
    expect(rows[2]![17]).toBe('=SUM(A1)');
    expect(rows[0]![10]).toBe('=1+2');
    expect(rows[9]![17]).toBe('-minus');
  });

  it('renders timestamps in the requested zone instead of the merchant zone', async () => {
    const { csvFiles } = await exportConversations(db.pool, {
      ...request,
      requestId: 'fixture-tokyo',
      timezone: 'Asia/Tokyo',
      from: '2026-09-01T14:00:00+09:00',
      to: '2026-09-02',
    });
    const rows = parseCsv([...csvFiles.values()][0]!).slice(1);
    expect(rows.map((row) => [row[0], row[3], row[4], row[25]])).toEqual([
      ['1000', '2026-09-01 14:00:00', '2026-09-01 14:00:02', '2026-09-02 16:02:03'],
      ['1000', '2026-09-01 14:00:00', '2026-09-01 14:00:10', '2026-09-02 16:02:03'],
      ['1000', '2026-09-01 14:00:00', '2026-09-01 14:00:10', '2026-09-02 16:02:03'],
      ['1000', '2026-09-01 14:00:00', '2026-09-01 14:00:20', '2026-09-02 16:02:03'],
    ]);
  });
});
