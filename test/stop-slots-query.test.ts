import { parse } from 'csv-parse/sync';
import { beforeAll, describe, expect, it } from 'vitest';
import { queryStopSlots, type StopSlotsQuery } from '../jobs/stop-slots/query.js';
import { STOP_SLOTS_HEADERS, stopSlotsCsv, type StopSlotGroup } from '../jobs/stop-slots/report.js';
import { withReadOnlySnapshot, type SnapshotSession } from '../sources/postgres-snapshot.js';
import { useTestDatabase } from './support/database.js';

const db = useTestDatabase();

/**
 * Merchant 71 has bots 710, 711 and 712; merchant 72 has bot 720. The range is
 * [2026-09-01T05:00Z, 2026-10-01T05:00Z). Each chat's comment says where it stops, if it counts.
 */
const STOP_SLOTS_FIXTURE_SQL = `
INSERT INTO merchants (id, name) VALUES (71, 'Tienda Slots'), (72, 'Otra Tienda Slots');
INSERT INTO contacts (id, merchant_id) VALUES (7100, 71), (7200, 72);
INSERT INTO bots (id, merchant_id, name) VALUES (710, 71, 'Ventas'), (711, 71, 'Soporte'), (712, 71, 'Quieto'), (720, 72, 'Ajeno');
INSERT INTO bot_slots (id, bot_id, name, text) VALUES
  (7100, 710, 'welcome', E'Hola\\r\\n\\r\\nElige una opción:\\n1. Ventas\\n2. "Soporte", ayuda'),
  (7101, 710, 'menu', NULL),
  (9, 711, 'nine', '=SUM(A1)'),
  (10, 711, '@ask', E'Line one\\rLine two'),
  (100, 711, 'hundred', NULL),
  (9007199254740993, 711, 'big', ' padded '),
  (7120, 712, 'never', 'never shown'),
  (7200, 720, 'secret', 'secret text of merchant 72');

INSERT INTO chats (id, merchant_id, provider, contact_id, bot_id, status, created_at) VALUES
  (801, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-09-02T10:00:00Z'),        -- 7101 (second of two bot messages)
  (802, 71, 'whatsapp', 7100, 710, 'OPENED', '2026-09-03T10:00:00Z'),        -- 7100, open chat
  (803, 71, 'whatsapp', 7100, 710, 'PICKED_UP', '2026-09-04T10:00:00Z'),     -- 7100: tie on created_at, higher id wins
  (804, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-09-05T10:00:00Z'),        -- (none): last bot message has no slot
  (805, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-09-06T10:00:00Z'),        -- not counted: no bot message
  (806, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-09-07T10:00:00Z'),        -- not counted: no message at all
  (807, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-09-01T05:00:00Z'),        -- 7100, created exactly at from
  (808, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-10-01T05:00:00Z'),        -- not counted: created exactly at to
  (809, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-09-01T04:59:59.999999Z'), -- not counted: before from
  (810, 71, 'whatsapp', 7100, NULL, 'CLOSED', '2026-09-08T10:00:00Z'),       -- not counted: no bot on the chat
  (811, 71, 'whatsapp', 7100, 710, 'CLOSED', '2026-09-09T10:00:00Z'),        -- 7101: latest created_at beats higher id
  (812, 71, 'whatsapp', 7100, 710, 'OPENED', '2026-09-10T10:00:00Z'),        -- (none)
  (821, 71, 'web', 7100, 711, 'CLOSED', '2026-09-11T10:00:00Z'),             -- 100
  (822, 71, 'web', 7100, 711, 'CLOSED', '2026-09-12T10:00:00Z'),             -- 10
  (823, 71, 'web', 7100, 711, 'CLOSED', '2026-09-13T10:00:00Z'),             -- 9
  (824, 71, 'web', 7100, 711, 'CLOSED', '2026-09-14T10:00:00Z'),             -- 7101, a slot of bot 710
  (825, 71, 'web', 7100, 711, 'CLOSED', '2026-09-15T10:00:00Z'),             -- 7200, a slot of merchant 72's bot
  (826, 71, 'web', 7100, 711, 'PICKED_UP', '2026-09-16T10:00:00Z'),          -- 9007199254740993
  (827, 71, 'web', 7100, 711, 'CLOSED', '2026-09-17T10:00:00Z'),             -- 10
  (831, 71, 'web', 7100, 712, 'CLOSED', '2026-09-15T10:00:00Z'),             -- not counted: no bot message
  (832, 71, 'web', 7100, 712, 'CLOSED', '2026-10-02T10:00:00Z'),             -- not counted: after the range
  (841, 72, 'web', 7200, 720, 'CLOSED', '2026-09-10T10:00:00Z'),             -- merchant 72 only: 7200
  (842, 72, 'web', 7200, 710, 'CLOSED', '2026-09-11T10:00:00Z'),             -- never: merchant 72's chat naming merchant 71's bot
  (843, 71, 'web', 7100, 720, 'CLOSED', '2026-09-12T10:00:00Z');             -- never: merchant 71's chat naming merchant 72's bot

INSERT INTO messages (id, chat_id, created_at, sender, type, body, bot_slot_id) VALUES
  (8011, 801, '2026-09-02T10:00:01Z', 'bot', 'text', 'hi', 7100),
  (8012, 801, '2026-09-02T10:00:02Z', 'bot', 'text', 'menu', 7101),
  (8013, 801, '2026-09-02T10:00:03Z', 'contact', 'text', 'bye', NULL),
  (8021, 802, '2026-09-03T10:00:01Z', 'bot', 'text', 'hi', 7100),
  (8022, 802, '2026-09-03T10:00:02Z', 'contact', 'text', '?', NULL),
  (8032, 803, '2026-09-04T10:00:05Z', 'bot', 'text', 'hi', 7100),
  (8031, 803, '2026-09-04T10:00:05Z', 'bot', 'text', 'menu', 7101),
  (8033, 803, '2026-09-04T10:00:06Z', 'agent', 'text', 'taking over', NULL),
  (8041, 804, '2026-09-05T10:00:01Z', 'bot', 'text', 'hi', 7100),
  (8042, 804, '2026-09-05T10:00:02Z', 'bot', 'text', 'free text', NULL),
  (8051, 805, '2026-09-06T10:00:01Z', 'contact', 'text', 'hello?', NULL),
  (8052, 805, '2026-09-06T10:00:02Z', 'agent', 'text', 'hello', NULL),
  (8071, 807, '2026-09-01T05:00:01Z', 'bot', 'text', 'hi', 7100),
  (8081, 808, '2026-10-01T05:00:01Z', 'bot', 'text', 'menu', 7101),
  (8091, 809, '2026-09-01T05:00:01Z', 'bot', 'text', 'menu', 7101),
  (8101, 810, '2026-09-08T10:00:01Z', 'bot', 'text', 'hi', 7100),
  (8111, 811, '2026-09-09T10:00:09Z', 'bot', 'text', 'menu', 7101),
  (8112, 811, '2026-09-09T10:00:01Z', 'bot', 'text', 'hi', 7100),
  (8121, 812, '2026-09-10T10:00:01Z', 'bot', 'text', 'free text', NULL),
  (8211, 821, '2026-09-11T10:00:01Z', 'bot', 'text', 'x', 9),
  (8212, 821, '2026-09-11T10:00:02Z', 'bot', 'text', 'x', 100),
  (8221, 822, '2026-09-12T10:00:01Z', 'bot', 'text', 'x', 10),
  (8231, 823, '2026-09-13T10:00:01Z', 'bot', 'text', 'x', 9),
  (8241, 824, '2026-09-14T10:00:01Z', 'bot', 'text', 'x', 7101),
  (8251, 825, '2026-09-15T10:00:01Z', 'bot', 'text', 'x', 7200),
  (8261, 826, '2026-09-16T10:00:01Z', 'bot', 'text', 'x', 9007199254740993),
  (8271, 827, '2026-09-17T10:00:01Z', 'bot', 'text', 'x', 10),
  (8272, 827, '2026-09-17T10:00:02Z', 'contact', 'text', 'x', NULL),
  (8311, 831, '2026-09-15T10:00:01Z', 'contact', 'text', 'x', NULL),
  (8321, 832, '2026-10-02T10:00:01Z', 'bot', 'text', 'x', 7120),
  (8411, 841, '2026-09-10T10:00:01Z', 'bot', 'text', 'x', 7200),
  (8421, 842, '2026-09-11T10:00:01Z', 'bot', 'text', 'x', 7100),
  (8431, 843, '2026-09-12T10:00:01Z', 'bot', 'text', 'x', 7200);
`;

beforeAll(() => db.pool.query(STOP_SLOTS_FIXTURE_SQL));

const range = { fromUtc: '2026-09-01T05:00:00Z', toUtc: '2026-10-01T05:00:00Z' };

function run(query: StopSlotsQuery): Promise<Map<string, StopSlotGroup[]>> {
  return withReadOnlySnapshot(db.pool, (session) => queryStopSlots(session, query));
}

/** One bot's report as parsed cells, header first. */
function cells(groups: readonly StopSlotGroup[]): string[][] {
  return parse(stopSlotsCsv(groups, { bom: true, formulaGuard: true }).text, { bom: true }) as string[][];
}

const HEADER = [...STOP_SLOTS_HEADERS];
const WELCOME_TEXT = 'Hola\r\n\r\nElige una opción:\n1. Ventas\n2. "Soporte", ayuda';

describe('stop-slots query over the hand-built fixture', () => {
  it('gives each bot of merchant 71 its report, cell by cell', async () => {
    const result = await run({ merchantId: '71', botIds: ['710', '711', '712', '720'], ...range });
    expect([...result.keys()]).toEqual(['710', '711', '712', '720']);

    expect(cells(result.get('710')!)).toEqual([
      HEADER,
      ['7100', 'welcome', 'Hola\n\nElige una opción:\n1. Ventas\n2. "Soporte", ayuda', '3', '42.86'],
      ['7101', 'menu', '', '2', '28.57'],
      ['', '(none)', '', '2', '28.57'],
    ]);

    expect(cells(result.get('711')!)).toEqual([
      HEADER,
      ['10', "'@ask", 'Line one\nLine two', '2', '28.57'],
      ['9', 'nine', "'=SUM(A1)", '1', '14.29'],
      ['100', 'hundred', '', '1', '14.29'],
      // Slots of another bot keep their id but show neither name nor text.
      ['7101', '', '', '1', '14.29'],
      ['7200', '', '', '1', '14.29'],
      ['9007199254740993', 'big', ' padded ', '1', '14.29'],
    ]);

    // Bot 712 had no dialog in the range; bot 720 belongs to merchant 72.
    expect(result.get('712')).toEqual([]);
    expect(result.get('720')).toEqual([]);
    expect(cells(result.get('712')!)).toEqual([HEADER]);
    expect(stopSlotsCsv(result.get('712')!, { bom: true, formulaGuard: true })).toEqual({
      text: '\uFEFFSlot ID,Slot Name,Slot Text,Dialogs,Share\r\n',
      rows: 0,
    });
  });

  it('returns groups with exact ids and raw texts', async () => {
    const result = await run({ merchantId: '71', botIds: ['710'], ...range });
    expect(result.get('710')).toEqual([
      { slotId: '7100', slotName: 'welcome', slotText: WELCOME_TEXT, dialogs: 3 },
      { slotId: '7101', slotName: 'menu', slotText: null, dialogs: 2 },
      { slotId: null, slotName: null, slotText: null, dialogs: 2 },
    ]);
  });

  it("counts merchant 72's own dialogs and none of merchant 71's bots", async () => {
    const result = await run({ merchantId: '72', botIds: ['720', '710'], ...range });
    expect(result.get('720')).toEqual([{ slotId: '7200', slotName: 'secret', slotText: 'secret text of merchant 72', dialogs: 1 }]);
    expect(result.get('710')).toEqual([]);
  });

  it('counts only chats created in [from, to)', async () => {
    const narrow = await run({ merchantId: '71', botIds: ['710'], fromUtc: '2026-09-01T05:00:00Z', toUtc: '2026-09-03T10:00:00Z' });
    expect(narrow.get('710')).toEqual([
      { slotId: '7100', slotName: 'welcome', slotText: WELCOME_TEXT, dialogs: 1 },
      { slotId: '7101', slotName: 'menu', slotText: null, dialogs: 1 },
    ]);
    const wide = await run({ merchantId: '71', botIds: ['710'], fromUtc: '2026-09-01T04:59:59.999999Z', toUtc: '2026-10-01T05:00:00.000001Z' });
    expect(wide.get('710')!.map((g) => [g.slotId, g.dialogs])).toEqual([
      ['7101', 4],
      ['7100', 3],
      [null, 2],
    ]);
  });

  it('runs one query, keys the result by the ids as requested, and skips the database for no bots', async () => {
    const seen: string[] = [];
    const result = await withReadOnlySnapshot(db.pool, (session) => {
      const counting: Pick<SnapshotSession, 'query'> = {
        query: (sql, values) => {
          seen.push(sql);
          return session.query(sql, values);
        },
      };
      return queryStopSlots(counting, { merchantId: '71', botIds: ['0711', '711', '999999'], ...range });
    });
    expect(seen).toHaveLength(1);
    expect([...result.keys()]).toEqual(['0711', '711', '999999']);
    expect(result.get('0711')).toEqual(result.get('711'));
    expect(result.get('711')).toHaveLength(6);
    expect(result.get('999999')).toEqual([]);

    const none = await queryStopSlots(
      {
        query: () => {
          throw new Error('no query expected');
        },
      },
      { merchantId: '71', botIds: [], ...range },
    );
    expect(none.size).toBe(0);
  });

  it('rejects ids that are not integers before querying', async () => {
    const session: Pick<SnapshotSession, 'query'> = {
      query: () => {
        throw new Error('no query expected');
      },
    };
    await expect(queryStopSlots(session, { merchantId: '71', botIds: ['7 1'], ...range })).rejects.toThrow(TypeError);
    await expect(queryStopSlots(session, { merchantId: 'x', botIds: ['710'], ...range })).rejects.toThrow(TypeError);
  });
});
