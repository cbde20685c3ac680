import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createPool } from '../db/connection.js';
import { chunkLines, copyLine, copyTimestamp, escapeCopyText } from '../db/copy-text.js';
import { migrate } from '../db/migrate.js';
import { seed, type SeedOptions, type SeedSummary } from '../db/seed.js';
import { createSeedPlan, merchantLayouts, messageRows, type MessageRow } from '../db/seed-data.js';
import { randomFor } from '../db/seed-random.js';
import { resolveSeedOptions } from '../db/seed.js';
import { useTestDatabase } from './support/database.js';

const db = useTestDatabase();

const TABLES = ['merchants', 'contacts', 'agents', 'bots', 'bot_slots', 'chats', 'messages'] as const;
type Table = (typeof TABLES)[number];

/** Runs `work` on a fresh migrated database of its own, dropped afterwards. */
async function withScratchDatabase<T>(work: (pool: pg.Pool) => Promise<T>, prepare?: string): Promise<T> {
  const admin = inject('adminDatabaseUrl');
  const name = `audit_export_seed_${randomBytes(6).toString('hex')}`;
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const adminClient = new pg.Client({ connectionString: admin });
  await adminClient.connect();
  try {
    await adminClient.query(`CREATE DATABASE ${name}`);
    const pool = createPool(url.toString(), { applicationName: 'audit-export-test', max: 2 });
    try {
      const client = await pool.connect();
      try {
        await migrate(client);
        if (prepare !== undefined) await client.query(prepare);
      } finally {
        client.release();
      }
      return await work(pool);
    } finally {
      await pool.end();
    }
  } finally {
    await adminClient.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await adminClient.end();
  }
}

async function tableHashes(pool: pg.Pool): Promise<Record<Table, string>> {
  const hashes: Partial<Record<Table, string>> = {};
  for (const table of TABLES) {
    const { rows } = await pool.query<{ hash: string; n: number }>(
      `SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) AS hash, count(*)::int AS n FROM ${table} t`,
    );
    hashes[table] = `${rows[0]?.n}:${rows[0]?.hash}`;
  }
  return hashes as Record<Table, string>;
}

async function exists(pool: pg.Pool, sql: string): Promise<boolean> {
  const { rows } = await pool.query<{ found: boolean }>(`SELECT EXISTS (${sql}) AS found`);
  return rows[0]?.found === true;
}

async function count(pool: pg.Pool, sql: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) AS rows_to_count`);
  return rows[0]?.n ?? Number.NaN;
}

const WINDOW_START = '2026-09-01 12:00:00+00';
const WINDOW_END = '2026-10-30 12:00:00+00';

/** Queries returning rows that break a rule; each must return none. */
const CONSISTENCY_RULES: readonly (readonly [string, string])[] = [
  ['contact of another merchant', `SELECT 1 FROM chats c JOIN contacts x ON x.id = c.contact_id WHERE x.merchant_id <> c.merchant_id`],
  ['agent of another merchant', `SELECT 1 FROM chats c JOIN agents x ON x.id = c.agent_id WHERE x.merchant_id <> c.merchant_id`],
  ['bot of another merchant', `SELECT 1 FROM chats c JOIN bots x ON x.id = c.bot_id WHERE x.merchant_id <> c.merchant_id`],
  ['bot message in a chat without bot', `SELECT 1 FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.sender = 'bot' AND c.bot_id IS NULL`],
  ['agent message in a chat without agent', `SELECT 1 FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.sender = 'agent' AND c.agent_id IS NULL`],
  ['slot on a message not from a bot', `SELECT 1 FROM messages WHERE bot_slot_id IS NOT NULL AND sender <> 'bot'`],
  ['slot of another bot', `SELECT 1 FROM messages m JOIN chats c ON c.id = m.chat_id JOIN bot_slots s ON s.id = m.bot_slot_id WHERE s.bot_id <> c.bot_id`],
  ['closed_at on a chat not CLOSED, or missing on a CLOSED one', `SELECT 1 FROM chats WHERE (closed_at IS NOT NULL) <> (status = 'CLOSED')`],
  ['closed_at not after the last message', `SELECT 1 FROM chats c JOIN messages m ON m.chat_id = c.id WHERE m.created_at >= c.closed_at`],
  ['closed_at before another chat time', `SELECT 1 FROM chats WHERE closed_at < greatest(created_at, opened_at, picked_up_at)`],
  ['picked_up_at without agent', `SELECT 1 FROM chats WHERE picked_up_at IS NOT NULL AND agent_id IS NULL`],
  ['agent without picked_up_at', `SELECT 1 FROM chats WHERE agent_id IS NOT NULL AND picked_up_at IS NULL`],
  ['PICKED_UP without agent', `SELECT 1 FROM chats WHERE status = 'PICKED_UP' AND agent_id IS NULL`],
  ['agent message before pick-up', `SELECT 1 FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.sender = 'agent' AND m.created_at < c.picked_up_at`],
  ['opened before created', `SELECT 1 FROM chats WHERE opened_at < created_at OR picked_up_at < created_at`],
  ['message before its chat', `SELECT 1 FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.created_at < c.created_at`],
  [
    'message ids out of time order within a chat',
    `SELECT 1 FROM (SELECT created_at < lag(created_at) OVER (PARTITION BY chat_id ORDER BY id) AS back FROM messages) AS s WHERE back`,
  ],
  ['chat with more than 60 messages', `SELECT 1 FROM messages GROUP BY chat_id HAVING count(*) > 60`],
  ['media message without URL, or text with one', `SELECT 1 FROM messages WHERE (type = 'text') = (media_url IS NOT NULL)`],
  [
    'timestamp outside [start 12:00 UTC, end 12:00 UTC)',
    `SELECT 1 FROM (
       SELECT created_at AS t FROM chats UNION ALL SELECT opened_at FROM chats UNION ALL SELECT picked_up_at FROM chats
       UNION ALL SELECT closed_at FROM chats UNION ALL SELECT created_at FROM messages) AS times
     WHERE t < '${WINDOW_START}' OR t >= '${WINDOW_END}'`,
  ],
  [
    'local date outside [2026-09-01, 2026-10-31) at UTC-12 or UTC+12',
    `SELECT 1 FROM (SELECT created_at AS t FROM messages UNION ALL SELECT closed_at FROM chats) AS times,
       (VALUES ('Etc/GMT+12'), ('Etc/GMT-12')) AS zones (zone)
     WHERE (t AT TIME ZONE zone)::date < '2026-09-01' OR (t AT TIME ZONE zone)::date >= '2026-10-31'`,
  ],
];

/** The awkward cases the export must meet; each query must find at least one row. */
const TRICKY_CASES: readonly (readonly [string, string])[] = [
  ['merchant in America/Bogota', `SELECT 1 FROM merchants WHERE timezone = 'America/Bogota'`],
  ['merchant name with accent and comma', `SELECT 1 FROM merchants WHERE name LIKE '%,%' AND name ~ '[À-ÿ]'`],
  ...['+57 300 123 4567', '(601) 555-0100', '3001234567', '=1+2', 'call me', ''].map(
    (phone) =>
      [`phone ${JSON.stringify(phone)}`, `SELECT 1 FROM contacts WHERE phone_number = '${phone}' OR mobile_number = '${phone}'`] as const,
  ),
  ['NULL phone_number', `SELECT 1 FROM contacts WHERE phone_number IS NULL`],
  ['NULL mobile_number', `SELECT 1 FROM contacts WHERE mobile_number IS NULL`],
  ['identification with leading zero', `SELECT 1 FROM contacts WHERE identification ~ '^0'`],
  ['NULL identification', `SELECT 1 FROM contacts WHERE identification IS NULL`],
  ['contact name with comma', `SELECT 1 FROM contacts WHERE name LIKE '%,%'`],
  ['contact name starting with =', `SELECT 1 FROM contacts WHERE name LIKE '=%'`],
  ['NULL contact name', `SELECT 1 FROM contacts WHERE name IS NULL`],
  ['NULL contact email', `SELECT 1 FROM contacts WHERE email IS NULL`],
  ['agent without e-mail', `SELECT 1 FROM agents WHERE email IS NULL`],
  ['agent with e-mail', `SELECT 1 FROM agents WHERE email LIKE '%@%'`],
  ['bot slot without text', `SELECT 1 FROM bot_slots WHERE text IS NULL`],
  ['multi-paragraph bot slot', `SELECT 1 FROM bot_slots WHERE text LIKE E'%\\n\\n%'`],
  ...['OPENED', 'PICKED_UP', 'CLOSED'].map((s) => [`${s} chat`, `SELECT 1 FROM chats WHERE status = '${s}'`] as const),
  ...['whatsapp', 'facebook', 'instagram', 'telegram', 'web'].map(
    (p) => [`${p} chat`, `SELECT 1 FROM chats WHERE provider = '${p}'`] as const,
  ),
  ['NULL alias', `SELECT 1 FROM chats WHERE alias IS NULL`],
  ['chat without agent', `SELECT 1 FROM chats WHERE agent_id IS NULL`],
  ['closed chat without agent', `SELECT 1 FROM chats WHERE agent_id IS NULL AND status = 'CLOSED'`],
  ['bot-served chat', `SELECT 1 FROM chats WHERE bot_id IS NOT NULL`],
  ['chat with agent and bot', `SELECT 1 FROM chats WHERE bot_id IS NOT NULL AND agent_id IS NOT NULL`],
  ['NULL opened_at', `SELECT 1 FROM chats WHERE opened_at IS NULL`],
  ['chat lasting over a day', `SELECT 1 FROM chats WHERE closed_at - created_at > interval '1 day'`],
  ['chat lasting under a second', `SELECT 1 FROM chats WHERE closed_at - created_at < interval '1 second'`],
  ['chat without messages', `SELECT 1 FROM chats c WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = c.id)`],
  ['chat created at the first instant', `SELECT 1 FROM chats WHERE created_at = '${WINDOW_START}'`],
  ['chat closed at the last instant', `SELECT 1 FROM chats WHERE closed_at = timestamptz '${WINDOW_END}' - interval '1 microsecond'`],
  ['message at .999999', `SELECT 1 FROM messages WHERE to_char(created_at AT TIME ZONE 'UTC', 'US') = '999999'`],
  ['chat created at .999999', `SELECT 1 FROM chats WHERE to_char(created_at AT TIME ZONE 'UTC', 'US') = '999999'`],
  ['messages sharing created_at in a chat', `SELECT 1 FROM messages GROUP BY chat_id, created_at HAVING count(*) > 1`],
  ...['contact', 'agent', 'bot'].map((s) => [`message from ${s}`, `SELECT 1 FROM messages WHERE sender = '${s}'`] as const),
  ['bot message with slot', `SELECT 1 FROM messages WHERE sender = 'bot' AND bot_slot_id IS NOT NULL`],
  ['bot message without slot', `SELECT 1 FROM messages WHERE sender = 'bot' AND bot_slot_id IS NULL`],
  ...['text', 'audio', 'image', 'file', 'video', 'sticker', 'location'].map(
    (t) => [`${t} message`, `SELECT 1 FROM messages WHERE type = '${t}'`] as const,
  ),
  ['body with LF lines', `SELECT 1 FROM messages WHERE body ~ '[^\\r]\\n'`],
  ['body with CRLF', `SELECT 1 FROM messages WHERE body LIKE E'%\\r\\n%'`],
  ['body with lone CR', `SELECT 1 FROM messages WHERE body ~ '\\r([^\\n]|$)'`],
  ['body with comma', `SELECT 1 FROM messages WHERE body LIKE '%,%'`],
  ['body with double quote', `SELECT 1 FROM messages WHERE body LIKE '%"%'`],
  ['body with emoji', `SELECT 1 FROM messages WHERE body ~ '[\\U0001F300-\\U0001FAFF]'`],
  ['body with CJK', `SELECT 1 FROM messages WHERE body ~ '[\\u3040-\\u30FF\\u4E00-\\u9FFF]'`],
  ...['=', '+', '-', '@'].map((c) => [`body starting with ${c}`, `SELECT 1 FROM messages WHERE left(body, 1) = '${c}'`] as const),
  ['body starting with TAB', `SELECT 1 FROM messages WHERE left(body, 1) = E'\\t'`],
  ['body starting with CR', `SELECT 1 FROM messages WHERE left(body, 1) = E'\\r'`],
  ['body with leading and trailing spaces', `SELECT 1 FROM messages WHERE body LIKE ' %' AND body LIKE '% '`],
  ['body with backslash', `SELECT 1 FROM messages WHERE body LIKE '%\\\\%'`],
  ['body that reads \\N', `SELECT 1 FROM messages WHERE body = '\\N'`],
  ['body longer than a spreadsheet cell', `SELECT 1 FROM messages WHERE length(body) > 32767`],
  ['empty body', `SELECT 1 FROM messages WHERE type = 'text' AND body = ''`],
  ['NULL body of a text message', `SELECT 1 FROM messages WHERE type = 'text' AND body IS NULL`],
  ['media with caption', `SELECT 1 FROM messages WHERE type <> 'text' AND caption <> ''`],
  ['media without caption', `SELECT 1 FROM messages WHERE type <> 'text' AND caption IS NULL`],
  ['caption starting with a formula character', `SELECT 1 FROM messages WHERE left(caption, 1) IN ('=', '+', '-', '@')`],
  ['multi-line caption', `SELECT 1 FROM messages WHERE caption LIKE E'%\\r\\n%'`],
];

describe('seed options', () => {
  const invalid: readonly (readonly [string, unknown, RegExp])[] = [
    ['no options', null, /`options`.*null/],
    ['merchants 0', { merchants: 0, messages: 1 }, /`merchants`.*>= 1.*got 0/],
    ['merchants 1.5', { merchants: 1.5, messages: 1 }, /`merchants`.*integer.*got 1\.5/],
    ['merchants as text', { merchants: '3', messages: 1 }, /`merchants`.*got "3"/],
    ['merchants missing', { messages: 1 }, /`merchants`.*got undefined/],
    ['messages -1', { merchants: 1, messages: -1 }, /`messages`.*>= 0.*got -1/],
    ['messages NaN', { merchants: 1, messages: Number.NaN }, /`messages`.*got NaN/],
    ['messages Infinity', { merchants: 1, messages: Infinity }, /`messages`.*got Infinity/],
    ['seed -1', { merchants: 1, messages: 1, seed: -1 }, /`seed`.*0 to 4294967295.*got -1/],
    ['seed 2^32', { merchants: 1, messages: 1, seed: 2 ** 32 }, /`seed`.*got 4294967296/],
    ['startDate 2026-02-30', { merchants: 1, messages: 1, startDate: '2026-02-30' }, /`startDate`.*YYYY-MM-DD.*"2026-02-30"/],
    ['startDate 2026-9-1', { merchants: 1, messages: 1, startDate: '2026-9-1' }, /`startDate`.*"2026-9-1"/],
    ['startDate as number', { merchants: 1, messages: 1, startDate: 20260901 }, /`startDate`.*got 20260901/],
    ['startDate before 1970', { merchants: 1, messages: 1, startDate: '1969-12-31' }, /`startDate`.*1970/],
    ['days 1', { merchants: 1, messages: 1, days: 1 }, /`days`.*from 2.*got 1/],
    ['days 2.5', { merchants: 1, messages: 1, days: 2.5 }, /`days`.*got 2\.5/],
    ['days past 9999', { merchants: 1, messages: 1, days: 3_000_000 }, /`days`.*9999-12-31.*got 3000000/],
  ];

  it.each(invalid)('rejects %s with a TypeError before touching the database', async (_name, options, message) => {
    const connect = vi.fn();
    const pool = { connect } as unknown as pg.Pool;
    const attempt = seed(pool, options as SeedOptions);
    await expect(attempt).rejects.toThrow(TypeError);
    await expect(attempt).rejects.toThrow(message);
    expect(connect).not.toHaveBeenCalled();
  });

  it('applies the documented defaults', () => {
    expect(resolveSeedOptions({ merchants: 2, messages: 0 })).toEqual({
      merchants: 2,
      messages: 0,
      seed: 1,
      startDate: '2026-09-01',
      days: 60,
    });
  });
});

describe('COPY text format', () => {
  it('escapes backslash, TAB, LF and CR, and keeps a literal \\N apart from NULL', () => {
    expect(escapeCopyText('a\\b\tc\nd\re')).toBe('a\\\\b\\tc\\nd\\re');
    expect(escapeCopyText('plain, "quoted" 👍')).toBe('plain, "quoted" 👍');
    expect(copyLine([1, null, '\\N', '', 'x\r\ny'])).toBe('1\t\\N\t\\\\N\t\tx\\r\\ny\n');
  });

  it('writes timestamps with all six fractional digits, never rounding', () => {
    const micros = Date.UTC(2026, 8, 1, 11, 59, 59) * 1000 + 999_999;
    expect(copyTimestamp(micros)).toBe('2026-09-01T11:59:59.999999Z');
    expect(copyTimestamp(Date.UTC(2026, 8, 1) * 1000 + 7)).toBe('2026-09-01T00:00:00.000007Z');
  });

  it('groups lines into chunks of about 64 KB without splitting a line', () => {
    const lines = Array.from({ length: 5000 }, (_, i) => `${i}\t${'x'.repeat(i % 97)}\n`);
    const chunks = [...chunkLines(lines)];
    expect(chunks.join('')).toBe(lines.join(''));
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks.slice(0, -1)) {
      expect(chunk.endsWith('\n')).toBe(true);
      expect(chunk.length).toBeGreaterThanOrEqual(64 * 1024);
      expect(chunk.length).toBeLessThan(64 * 1024 + 200);
    }
  });
});

function hashMessages(options: SeedOptions): { hash: string; rows: number } {
  const hash = createHash('md5');
  let rows = 0;
  for (const row of messageRows(createSeedPlan(resolveSeedOptions(options)))) {
    hash.update(JSON.stringify(row));
    rows += 1;
  }
  return { hash: hash.digest('hex'), rows };
}

describe('seed generators (no database)', () => {
  it('derives independent, repeatable random streams from keys', () => {
    const draw = (...keys: number[]): number[] => {
      const random = randomFor(...keys);
      return Array.from({ length: 8 }, () => random.uint32());
    };
    expect(draw(1, 0, 5)).toEqual(draw(1, 0, 5));
    expect(draw(1, 0, 5)).not.toEqual(draw(1, 0, 6));
    expect(draw(1, 2 ** 32)).not.toEqual(draw(1, 0));
  });

  it.each([
    [1, 0],
    [1, 1],
    [1, 57],
    [3, 2],
    [7, 1234],
    [25, 10_000],
  ])('makes exactly the requested messages for %i merchants x %i messages', (merchants, messages) => {
    const plan = createSeedPlan(resolveSeedOptions({ merchants, messages }));
    const layouts = [...merchantLayouts(plan)];
    expect(layouts).toHaveLength(merchants);
    let produced = 0;
    let lastId = 0;
    for (const row of messageRows(plan)) {
      produced += 1;
      expect(row.id).toBe(lastId + 1);
      lastId = row.id;
    }
    expect(produced).toBe(messages);
    expect(layouts.reduce((sum, layout) => sum + layout.quota, 0)).toBe(messages);
    // Every merchant has chats, even without messages.
    for (const layout of layouts) expect(layout.chatCount).toBeGreaterThan(0);
  });

  it('shares messages evenly, except every tenth merchant from the third, which gets none', () => {
    const plan = createSeedPlan(resolveSeedOptions({ merchants: 25, messages: 10_001 }));
    const quotas = [...merchantLayouts(plan)].map((layout) => layout.quota);
    const silent = quotas.flatMap((quota, index) => (quota === 0 ? [index] : []));
    expect(silent).toEqual([2, 12, 22]);
    const active = quotas.filter((quota) => quota > 0);
    expect(Math.max(...active) - Math.min(...active)).toBeLessThanOrEqual(1);
  });

  it('is a function of the options: same options, same rows; another seed, other rows', () => {
    const options = { merchants: 3, messages: 3000, seed: 42 };
    expect(hashMessages(options)).toEqual(hashMessages(options));
    expect(hashMessages(options).hash).not.toBe(hashMessages({ ...options, seed: 43 }).hash);
    expect(hashMessages(options).hash).not.toBe(hashMessages({ ...options, startDate: '2027-01-01' }).hash);
  });

  it('keeps every timestamp inside a two-day window, squeezing long chats', () => {
    const plan = createSeedPlan(resolveSeedOptions({ merchants: 2, messages: 5000, days: 2 }));
    let previous: MessageRow | undefined;
    for (const row of messageRows(plan)) {
      expect(row.createdAt).toBeGreaterThanOrEqual(plan.windowStart);
      expect(row.createdAt).toBeLessThan(plan.windowEnd);
      if (previous?.chatId === row.chatId) expect(row.createdAt).toBeGreaterThanOrEqual(previous.createdAt);
      previous = row;
    }
  });
});

describe('seed into PostgreSQL', () => {
  const SMALL: SeedOptions = { merchants: 1, messages: 200 };
  let first: SeedSummary;

  beforeAll(async () => {
    first = await seed(db.pool, SMALL);
  });

  it('inserts exactly the requested merchants and messages, with ids from 1', async () => {
    expect(first).toMatchObject({ merchants: 1, messages: 200, firstMerchantId: 1, lastMerchantId: 1 });
    expect(first.seconds).toBeGreaterThan(0);
    const summaryKeys: Record<Table, keyof SeedSummary> = {
      merchants: 'merchants',
      contacts: 'contacts',
      agents: 'agents',
      bots: 'bots',
      bot_slots: 'botSlots',
      chats: 'chats',
      messages: 'messages',
    };
    for (const table of TABLES) {
      const { rows } = await db.pool.query<{ n: number; low: string; high: string }>(
        `SELECT count(*)::int AS n, min(id)::text AS low, max(id)::text AS high FROM ${table}`,
      );
      const stats = rows[0];
      expect(stats?.n, table).toBe(first[summaryKeys[table]]);
      expect(stats?.low, table).toBe('1');
      expect(Number(stats?.high), table).toBe(stats?.n);
    }
  });

  it.each(TRICKY_CASES)('contains a %s', async (_name, sql) => {
    expect(await exists(db.pool, sql)).toBe(true);
  });

  it.each(CONSISTENCY_RULES)('never has a %s', async (_name, sql) => {
    expect(await count(db.pool, sql)).toBe(0);
  });

  it('gives byte-identical tables when the same options seed another empty database', async () => {
    const here = await tableHashes(db.pool);
    const there = await withScratchDatabase(async (pool) => {
      await seed(pool, SMALL);
      return await tableHashes(pool);
    });
    expect(there).toEqual(here);
    // The comparison can fail: another seed value changes the random chats and messages. (A seed
    // this small has only the fixed showcase contacts, agents and bots, so those stay the same.)
    const other = await withScratchDatabase(async (pool) => {
      await seed(pool, { ...SMALL, seed: 2 });
      return await tableHashes(pool);
    });
    expect(other.chats).not.toBe(here.chats);
    expect(other.messages).not.toBe(here.messages);
  });

  it('appends after the existing rows when seeding again, with the same rows modulo ids', async () => {
    const before = await tableHashes(db.pool);
    const second = await seed(db.pool, SMALL);
    expect(second).toMatchObject({ merchants: 1, messages: 200, firstMerchantId: 2, lastMerchantId: 2 });
    expect(await count(db.pool, 'SELECT 1 FROM messages')).toBe(400);

    // Each table's rows as text, with its own id and every reference shifted by an offset per table.
    const shifted: Record<Table, (o: Record<Table, number>) => string> = {
      merchants: (o) => `concat_ws('|', id - ${o.merchants}, name, timezone)`,
      contacts: (o) =>
        `concat_ws('|', id - ${o.contacts}, merchant_id - ${o.merchants}, identification, name, email, phone_number, mobile_number)`,
      agents: (o) => `concat_ws('|', id - ${o.agents}, merchant_id - ${o.merchants}, name, username, email)`,
      bots: (o) => `concat_ws('|', id - ${o.bots}, merchant_id - ${o.merchants}, name)`,
      bot_slots: (o) => `concat_ws('|', id - ${o.bot_slots}, bot_id - ${o.bots}, name, text)`,
      chats: (o) =>
        `concat_ws('|', id - ${o.chats}, merchant_id - ${o.merchants}, provider, alias, contact_id - ${o.contacts}, ` +
        `agent_id - ${o.agents}, bot_id - ${o.bots}, status, created_at, opened_at, picked_up_at, closed_at)`,
      messages: (o) =>
        `concat_ws('|', id - ${o.messages}, chat_id - ${o.chats}, created_at, sender, type, body, media_url, caption, ` +
        `bot_slot_id - ${o.bot_slots})`,
    };
    const offsets = {} as Record<Table, number>;
    for (const table of TABLES) offsets[table] = Number(before[table].split(':')[0]);
    const zero = Object.fromEntries(TABLES.map((table) => [table, 0])) as Record<Table, number>;
    for (const table of TABLES) {
      const hash = async (shift: Record<Table, number>, where: string): Promise<string> => {
        const { rows } = await db.pool.query<{ hash: string }>(
          `SELECT md5(string_agg(${shifted[table](shift)}, E'\\n' ORDER BY id)) AS hash FROM ${table} WHERE ${where}`,
        );
        return rows[0]?.hash ?? '';
      };
      const original = await hash(zero, `id <= ${offsets[table]}`);
      expect(original, table).toMatch(/^[0-9a-f]{32}$/);
      expect(await hash(offsets, `id > ${offsets[table]}`), table).toBe(original);
    }
  });

  it('rolls everything back and destroys the connection when a COPY fails', async () => {
    // A constraint that only some message rows break makes the last COPY fail half-way through.
    const outcome = await withScratchDatabase(
      async (pool) => {
        const failure = await seed(pool, SMALL).then(
          () => undefined,
          (error: unknown) => error,
        );
        const clients = pool.totalCount;
        const leftovers = await count(pool, TABLES.map((table) => `SELECT id FROM ${table}`).join(' UNION ALL '));
        return { failure, leftovers, clients };
      },
      `ALTER TABLE messages ADD CONSTRAINT no_formulas CHECK (body NOT LIKE '=%')`,
    );
    expect(String(outcome.failure)).toMatch(/no_formulas/);
    expect(outcome.leftovers).toBe(0);
    // The failed client was destroyed rather than returned to the pool, and the pool still works.
    expect(outcome.clients).toBe(0);
  });

  it('spreads many merchants over the time zones, keeps them apart and leaves some silent', async () => {
    const options = { merchants: 12, messages: 3000, seed: 9 };
    const result = await withScratchDatabase(async (pool) => {
      const summary = await seed(pool, options);
      const zones = await pool.query<{ id: string; timezone: string }>('SELECT id::text, timezone FROM merchants ORDER BY id');
      const perMerchant = await pool.query<{ id: string; chats: number; messages: number }>(`
        SELECT c.merchant_id::text AS id, count(DISTINCT c.id)::int AS chats, count(m.id)::int AS messages
        FROM chats c LEFT JOIN messages m ON m.chat_id = c.id GROUP BY c.merchant_id ORDER BY c.merchant_id`);
      const violations: Record<string, number> = {};
      for (const [name, sql] of CONSISTENCY_RULES) violations[name] = await count(pool, sql);
      return { summary, zones: zones.rows, perMerchant: perMerchant.rows, violations };
    });
    expect(result.summary).toMatchObject({ merchants: 12, messages: 3000, firstMerchantId: 1, lastMerchantId: 12 });
    expect(result.zones[0]?.timezone).toBe('America/Bogota');
    expect(new Set(result.zones.map((z) => z.timezone)).size).toBe(8);
    expect(result.perMerchant).toHaveLength(12);
    const silent = result.perMerchant.filter((m) => m.messages === 0);
    expect(silent.map((m) => m.id)).toEqual(['3']);
    expect(silent[0]?.chats).toBeGreaterThan(0);
    const active = result.perMerchant.filter((m) => m.messages > 0).map((m) => m.messages);
    expect(active.reduce((a, b) => a + b, 0)).toBe(3000);
    expect(Math.max(...active) - Math.min(...active)).toBeLessThanOrEqual(1);
    expect(Object.values(result.violations).every((n) => n === 0)).toBe(true);
    expect(result.violations).toEqual(Object.fromEntries(CONSISTENCY_RULES.map(([name]) => [name, 0])));
  });
});
