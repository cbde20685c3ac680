/**
 * `db seed`: fills the source tables with deterministic synthetic chat data, streamed into
 * PostgreSQL with `COPY ... FROM STDIN`. The rows come from the pure generators of `seed-data.ts`.
 */
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { chunkLines, copyLine, copyTimestamp, type CopyValue } from './copy-text.js';
import { checkOut } from './connection.js';
import {
  agentRows,
  botRows,
  botSlotRows,
  chatRows,
  contactRows,
  createSeedPlan,
  type IdOffsets,
  merchantRows,
  messageRows,
  type ResolvedSeedOptions,
  type SeedPlan,
} from './seed-data.js';

export type { ResolvedSeedOptions } from './seed-data.js';

/** What to generate. The same options always produce the same rows (ids aside, see {@link seed}). */
export interface SeedOptions {
  /** Number of merchants, at least 1. */
  readonly merchants: number;
  /** Exact number of messages, at least 0, shared roughly evenly by the merchants. */
  readonly messages: number;
  /** Seed of the pseudo-random generator, an integer from 0 to 2^32 - 1; default 1. */
  readonly seed?: number;
  /** First local date of the data, `YYYY-MM-DD`; default `2026-09-01`. */
  readonly startDate?: string;
  /**
   * Length of the local-date window in days, at least 2; default 60. All timestamps lie in
   * [startDate 12:00 UTC, startDate + days - 1 12:00 UTC), i.e. inside the local dates
   * [startDate, startDate + days) in every time zone from UTC-12 to UTC+12.
   */
  readonly days?: number;
}

/** What {@link seed} inserted. */
export interface SeedSummary {
  readonly merchants: number;
  readonly contacts: number;
  readonly agents: number;
  readonly bots: number;
  readonly botSlots: number;
  readonly chats: number;
  readonly messages: number;
  /** Id of the first merchant inserted; merchants got consecutive ids up to {@link lastMerchantId}. */
  readonly firstMerchantId: number;
  readonly lastMerchantId: number;
  /** Wall-clock duration of the whole seed, in seconds. */
  readonly seconds: number;
}

/** Defaults of the optional {@link SeedOptions}. */
export const SEED_DEFAULTS = { seed: 1, startDate: '2026-09-01', days: 60 } as const;

const MAX_SEED = 0xffff_ffff;
// Timestamps must stay within PostgreSQL's four-digit years and at or after 1970 (the generators
// count microseconds since then).
const LAST_END_DATE_MS = Date.UTC(9999, 11, 31);
const DAY_MS = 86_400_000;

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}

function integerOption(name: string, value: unknown, min: number, max: number, rule: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new TypeError(`Expected \`${name}\` to be ${rule}, got ${show(value)}`);
  }
  return value;
}

/**
 * Checks seed options and applies the defaults. Throws a TypeError naming the option, the value
 * and the rule, before anything touches the database.
 */
export function resolveSeedOptions(options: SeedOptions): ResolvedSeedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected seed \`options\` to be an object, got ${show(options)}`);
  }
  const merchants = integerOption(
    'merchants',
    options.merchants,
    1,
    Number.MAX_SAFE_INTEGER,
    'an integer >= 1',
  );
  const messages = integerOption('messages', options.messages, 0, Number.MAX_SAFE_INTEGER, 'an integer >= 0');
  const seedValue = integerOption(
    'seed',
    options.seed ?? SEED_DEFAULTS.seed,
    0,
    MAX_SEED,
    `an integer from 0 to ${MAX_SEED}`,
  );
  const startDate = options.startDate ?? SEED_DEFAULTS.startDate;
  const match = typeof startDate === 'string' ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(startDate) : null;
  const startMs = match === null ? Number.NaN : Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  // Date.UTC rolls 2026-02-30 over into March; a round trip catches dates that do not exist.
  if (match === null || Number.isNaN(startMs) || new Date(startMs).toISOString().slice(0, 10) !== startDate || startMs < 0) {
    throw new TypeError(
      `Expected \`startDate\` to be a calendar date YYYY-MM-DD from 1970-01-01 on, got ${show(startDate)}`,
    );
  }
  const maxDays = Math.floor((LAST_END_DATE_MS - startMs) / DAY_MS);
  if (maxDays < 2) {
    throw new TypeError(`Expected \`startDate\` to leave at least 2 days before 9999-12-31, got ${show(startDate)}`);
  }
  const days = integerOption(
    'days',
    options.days ?? SEED_DEFAULTS.days,
    2,
    maxDays,
    `an integer from 2 to ${maxDays} (at least 2: the time common to every zone from UTC-12 to UTC+12 is a day ` +
      'shorter than the local-date window; at most what ends by 9999-12-31)',
  );
  return { merchants, messages, seed: seedValue, startDate, days };
}

function timestamp(micros: number | null): string | null {
  return micros === null ? null : copyTimestamp(micros);
}

/** One table's load: its COPY column list and its rows as COPY text lines, in that column order. */
interface TableLoad {
  readonly table: string;
  readonly summaryKey: keyof IdOffsets;
  readonly columns: readonly string[];
  readonly lines: (plan: SeedPlan) => Iterable<string>;
}

function* linesOf<Row>(rows: Iterable<Row>, values: (row: Row) => readonly CopyValue[]): Generator<string> {
  for (const row of rows) yield copyLine(values(row));
}

/** The tables in foreign-key order, each loaded by one COPY. */
const TABLE_LOADS: readonly TableLoad[] = [
  {
    table: 'merchants',
    summaryKey: 'merchants',
    columns: ['id', 'name', 'timezone'],
    lines: (plan) => linesOf(merchantRows(plan), (r) => [r.id, r.name, r.timezone]),
  },
  {
    table: 'contacts',
    summaryKey: 'contacts',
    columns: ['id', 'merchant_id', 'identification', 'name', 'email', 'phone_number', 'mobile_number'],
    lines: (plan) =>
      linesOf(contactRows(plan), (r) => [
        r.id,
        r.merchantId,
        r.identification,
        r.name,
        r.email,
        r.phoneNumber,
        r.mobileNumber,
      ]),
  },
  {
    table: 'agents',
    summaryKey: 'agents',
    columns: ['id', 'merchant_id', 'name', 'username', 'email'],
    lines: (plan) => linesOf(agentRows(plan), (r) => [r.id, r.merchantId, r.name, r.username, r.email]),
  },
  {
    table: 'bots',
    summaryKey: 'bots',
    columns: ['id', 'merchant_id', 'name'],
    lines: (plan) => linesOf(botRows(plan), (r) => [r.id, r.merchantId, r.name]),
  },
  {
    table: 'bot_slots',
    summaryKey: 'botSlots',
    columns: ['id', 'bot_id', 'name', 'text'],
    lines: (plan) => linesOf(botSlotRows(plan), (r) => [r.id, r.botId, r.name, r.text]),
  },
  {
    table: 'chats',
    summaryKey: 'chats',
    columns: [
      'id',
      'merchant_id',
      'provider',
      'alias',
      'contact_id',
      'agent_id',
      'bot_id',
      'status',
      'created_at',
      'opened_at',
      'picked_up_at',
      'closed_at',
    ],
    lines: (plan) =>
      linesOf(chatRows(plan), (r) => [
        r.id,
        r.merchantId,
        r.provider,
        r.alias,
        r.contactId,
        r.agentId,
        r.botId,
        r.status,
        copyTimestamp(r.createdAt),
        timestamp(r.openedAt),
        timestamp(r.pickedUpAt),
        timestamp(r.closedAt),
      ]),
  },
  {
    table: 'messages',
    summaryKey: 'messages',
    columns: ['id', 'chat_id', 'created_at', 'sender', 'type', 'body', 'media_url', 'caption', 'bot_slot_id'],
    lines: (plan) =>
      linesOf(messageRows(plan), (r) => [
        r.id,
        r.chatId,
        copyTimestamp(r.createdAt),
        r.sender,
        r.type,
        r.body,
        r.mediaUrl,
        r.caption,
        r.botSlotId,
      ]),
  },
];

// Ids above this could overflow JavaScript's safe integers while a seed adds to them.
const MAX_ID_OFFSET = 2 ** 52;

async function currentMaxIds(client: pg.ClientBase): Promise<IdOffsets> {
  const selects = TABLE_LOADS.map((load) => `(SELECT coalesce(max(id), 0) FROM ${load.table})::text AS ${load.table}`);
  const { rows } = await client.query<Record<string, string>>(`SELECT ${selects.join(', ')}`);
  const row = rows[0] ?? {};
  const maxId = (table: string): number => {
    const value = Number(row[table]);
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_ID_OFFSET) {
      throw new RangeError(`Cannot seed: ${table} has max(id) ${row[table]}, outside 0..2^52`);
    }
    return value;
  };
  return {
    merchants: maxId('merchants'),
    contacts: maxId('contacts'),
    agents: maxId('agents'),
    bots: maxId('bots'),
    botSlots: maxId('bot_slots'),
    chats: maxId('chats'),
    messages: maxId('messages'),
  };
}

async function copyInto(client: pg.ClientBase, load: TableLoad, plan: SeedPlan): Promise<number> {
  const copy = client.query(copyFrom(`COPY ${load.table} (${load.columns.join(', ')}) FROM STDIN`));
  // Not object mode: the readable buffers at most one 64 KB chunk ahead of the socket.
  await pipeline(Readable.from(chunkLines(load.lines(plan)), { objectMode: false }), copy);
  return copy.rowCount;
}

/**
 * Inserts synthetic merchants with their contacts, agents, bots, bot slots, chats and exactly
 * `options.messages` messages, in one transaction, and returns what it inserted.
 *
 * Ids continue after each table's current maximum, so seeding an empty database gives merchants
 * 1..N and seeding again adds more. Apart from those ids the rows depend only on the options:
 * seeding two empty databases with the same options gives identical tables.
 *
 * Concurrent readers are not blocked; concurrent writers of these tables (another seed included)
 * wait for the seed to commit, because the seed's ids are computed from the current maxima.
 */
export async function seed(pool: pg.Pool, options: SeedOptions): Promise<SeedSummary> {
  const resolved = resolveSeedOptions(options);
  if (typeof pool !== 'object' || pool === null || typeof pool.connect !== 'function') {
    throw new TypeError(`Expected \`pool\` to be a pg.Pool, got ${show(pool)}`);
  }
  const started = performance.now();
  const borrowed = await checkOut(pool);
  const { client } = borrowed;
  let failed = false;
  try {
    await client.query('BEGIN');
    // SHARE ROW EXCLUSIVE conflicts with itself and with every writer, but not with SELECT: two
    // seeds cannot read the same max(id), and exports keep running.
    await client.query(
      `LOCK TABLE ${TABLE_LOADS.map((load) => load.table).join(', ')} IN SHARE ROW EXCLUSIVE MODE`,
    );
    const plan = createSeedPlan(resolved, await currentMaxIds(client));
    const counts: Record<string, number> = {};
    for (const load of TABLE_LOADS) counts[load.summaryKey] = await copyInto(client, load, plan);
    await client.query('COMMIT');
    const count = (key: keyof IdOffsets): number => counts[key] ?? 0;
    return {
      merchants: count('merchants'),
      contacts: count('contacts'),
      agents: count('agents'),
      bots: count('bots'),
      botSlots: count('botSlots'),
      chats: count('chats'),
      messages: count('messages'),
      firstMerchantId: plan.after.merchants + 1,
      lastMerchantId: plan.after.merchants + count('merchants'),
      seconds: (performance.now() - started) / 1000,
    };
  } catch (error) {
    // No ROLLBACK: after a failed COPY the connection may never answer it. Destroying the client
    // closes the session, and the server rolls the transaction back.
    failed = true;
    throw error;
  } finally {
    borrowed.release(failed);
  }
}
