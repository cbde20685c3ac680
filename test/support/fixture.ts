import type pg from 'pg';

/**
 * A small hand-built data set whose export is known cell by cell (see test/export-fixture.test.ts).
 * Merchant 1 is in America/Bogota (UTC-5, no DST); merchant 2 must never appear in its exports.
 */
export const FIXTURE_SQL = `
INSERT INTO merchants (id, name, timezone) VALUES
  (1, 'Tienda Uno', 'America/Bogota'),
  (2, 'Otra Tienda', 'Asia/Tokyo'),
  (3, 'Sin Zona', 'Mars/Olympus_Mons');

INSERT INTO contacts (id, merchant_id, identification, name, email, phone_number, mobile_number) VALUES
  (10, 1, 'CC 123', 'Ana, "La Jefa"', 'ana@example.com', '+57 300 123 4567', '=1+2'),
  (11, 1, NULL, NULL, NULL, NULL, NULL),
  (20, 2, 'X-9', 'Other Person', 'other@example.com', '555', '556');

INSERT INTO agents (id, merchant_id, name, username, email) VALUES
  (100, 1, 'Bob Agent', 'bob', 'bob@example.com'),
  (101, 1, '@evil', 'evil', NULL),
  (200, 2, 'Other Agent', 'oa', NULL);

INSERT INTO bots (id, merchant_id, name) VALUES (5, 1, 'Menu Bot'), (6, 2, 'Other Bot');
INSERT INTO bot_slots (id, bot_id, name, text) VALUES (50, 5, 'welcome', E'Hi\\n\\nChoose'), (60, 6, 'x', NULL);

INSERT INTO chats (id, merchant_id, provider, alias, contact_id, agent_id, bot_id, status, created_at, opened_at, picked_up_at, closed_at) VALUES
  (1000, 1, 'whatsapp', 'sales', 10, 100, NULL, 'CLOSED', '2026-09-01T05:00:00.5Z', '2026-09-01T05:00:01Z', '2026-09-01T05:01:00.999Z', '2026-09-02T07:02:03.999Z'),
  (1001, 1, 'facebook', NULL, 11, NULL, 5, 'CLOSED', '2026-09-10T12:00:00Z', NULL, NULL, '2026-09-10T12:00:30.7Z'),
  (1002, 1, 'web', 'support', 10, 101, NULL, 'OPENED', '2026-09-15T15:30:00Z', '2026-09-15T15:30:00Z', NULL, NULL),
  (1003, 1, 'telegram', NULL, 11, 100, NULL, 'CLOSED', '2026-10-31T04:59:59Z', '2026-10-31T05:00:00Z', '2026-10-31T05:00:00Z', '2026-10-31T05:00:00.4Z'),
  (1004, 1, 'whatsapp', 'sales', 10, 100, NULL, 'CLOSED', '2026-10-31T05:00:00Z', NULL, NULL, '2026-10-31T06:00:00Z'),
  (1005, 1, 'whatsapp', 'sales', 10, 100, NULL, 'CLOSED', '2026-09-01T04:59:59.999Z', NULL, NULL, '2026-09-01T06:00:00Z'),
  (1006, 1, 'whatsapp', 'sales', 10, 100, NULL, 'CLOSED', '2026-09-20T10:00:00Z', NULL, NULL, '2026-09-20T11:00:00Z'),
  (1007, 1, 'instagram', NULL, 11, NULL, NULL, 'PICKED_UP', '2026-09-25T10:00:00Z', '2026-09-25T10:00:00Z', '2026-09-25T10:05:00Z', NULL),
  (2000, 2, 'whatsapp', 'sales', 20, 200, 6, 'CLOSED', '2026-09-05T10:00:00Z', NULL, NULL, '2026-09-05T11:00:00Z');

INSERT INTO messages (id, chat_id, created_at, sender, type, body, media_url, caption, bot_slot_id) VALUES
  (1, 1000, '2026-09-01T05:00:02.999999Z', 'contact', 'text', E'Hola, "amigo"\\r\\nline2', NULL, NULL, NULL),
  (3, 1000, '2026-09-01T05:00:10Z', 'agent', 'text', '=SUM(A1)', NULL, NULL, NULL),
  (2, 1000, '2026-09-01T05:00:10Z', 'contact', 'image', 'ignored body', 'https://cdn.example.com/x.png', '+caption', NULL),
  (4, 1000, '2026-09-01T05:00:20Z', 'agent', 'text', NULL, NULL, NULL, NULL),
  (10, 1001, '2026-09-10T12:00:01Z', 'bot', 'text', E'Bienvenido 😀\\nElige', NULL, NULL, 50),
  (11, 1001, '2026-09-10T12:00:05Z', 'contact', 'text', '  spaced  ', NULL, NULL, NULL),
  (12, 1001, '2026-09-10T12:00:06Z', 'contact', 'audio', NULL, NULL, '', NULL),
  (20, 1002, '2026-09-15T15:31:00Z', 'contact', 'text', E'中文\\rtext', NULL, NULL, NULL),
  (30, 1003, '2026-10-31T05:00:00.1Z', 'agent', 'text', '-minus', NULL, NULL, NULL),
  (40, 1004, '2026-10-31T05:00:01Z', 'contact', 'text', 'after the range', NULL, NULL, NULL),
  (50, 1005, '2026-09-01T05:00:01Z', 'contact', 'text', 'chat created before the range', NULL, NULL, NULL),
  (70, 1007, '2026-09-25T10:01:00Z', 'contact', 'location', NULL, 'geo:4.6,-74.08', 'Here', NULL),
  (80, 2000, '2026-09-05T10:01:00Z', 'contact', 'text', 'secret of merchant 2', NULL, NULL, NULL);
`;

/** Loads {@link FIXTURE_SQL}. */
export async function loadFixture(pool: pg.Pool): Promise<void> {
  await pool.query(FIXTURE_SQL);
}

const CHAT_1000 = ['1000', '1', 'whatsapp', '2026-09-01 00:00:00'];
const CONTACT_10 = ['10', 'CC 123', 'Ana, "La Jefa"', 'ana@example.com', '+57 300 123 4567', "'=1+2"];
const CONTACT_11 = ['11', '', '', '', '', ''];
const AGENT_100 = ['100', 'Bob Agent', 'bob', 'bob@example.com'];
const NO_AGENT = ['', '', '', ''];
const CHAT_1000_TAIL = ['sales', '', 'CLOSED', '2026-09-01 00:00:01', '2026-09-01 00:01:00', '2026-09-02 02:02:03', '01:02:02:02'];
const CHAT_1001 = ['1001', '1', 'facebook', '2026-09-10 07:00:00'];
const CHAT_1001_TAIL = ['', 'Menu Bot', 'CLOSED', '', '', '2026-09-10 07:00:30', '00:00:00:30'];

/** The export of merchant 1, 2026-09-01 to 2026-10-31, in its zone, as parsed cells (header excluded). */
export const FIXTURE_EXPECTED_ROWS: readonly (readonly string[])[] = [
  [...CHAT_1000, '2026-09-01 00:00:02', ...CONTACT_10, ...AGENT_100, 'true', 'Hola, "amigo"\nline2', '', 'text', '', ...CHAT_1000_TAIL],
  [...CHAT_1000, '2026-09-01 00:00:10', ...CONTACT_10, ...AGENT_100, 'true', 'https://cdn.example.com/x.png', '', 'image', "'+caption", ...CHAT_1000_TAIL],
  [...CHAT_1000, '2026-09-01 00:00:10', ...CONTACT_10, ...AGENT_100, 'false', '', "'=SUM(A1)", 'text', '', ...CHAT_1000_TAIL],
  [...CHAT_1000, '2026-09-01 00:00:20', ...CONTACT_10, ...AGENT_100, 'false', '', '', 'text', '', ...CHAT_1000_TAIL],
  [...CHAT_1001, '2026-09-10 07:00:01', ...CONTACT_11, ...NO_AGENT, 'false', '', 'Bienvenido 😀\nElige', 'text', '', ...CHAT_1001_TAIL],
  [...CHAT_1001, '2026-09-10 07:00:05', ...CONTACT_11, ...NO_AGENT, 'true', '  spaced  ', '', 'text', '', ...CHAT_1001_TAIL],
  [...CHAT_1001, '2026-09-10 07:00:06', ...CONTACT_11, ...NO_AGENT, 'true', '', '', 'audio', '', ...CHAT_1001_TAIL],
  ['1002', '1', 'web', '2026-09-15 10:30:00', '2026-09-15 10:31:00', ...CONTACT_10, '101', "'@evil", 'evil', '', 'true', '中文\ntext', '', 'text', '', 'support', '', 'OPENED', '2026-09-15 10:30:00', '', '', ''],
  ['1007', '1', 'instagram', '2026-09-25 05:00:00', '2026-09-25 05:01:00', ...CONTACT_11, ...NO_AGENT, 'true', 'geo:4.6,-74.08', '', 'location', 'Here', '', '', 'PICKED_UP', '2026-09-25 05:00:00', '2026-09-25 05:05:00', '', ''],
  ['1003', '1', 'telegram', '2026-10-30 23:59:59', '2026-10-31 00:00:00', ...CONTACT_11, ...AGENT_100, 'false', '', "'-minus", 'text', '', '', '', 'CLOSED', '2026-10-31 00:00:00', '2026-10-31 00:00:00', '2026-10-31 00:00:00', '00:00:00:00'],
];
