/**
 * Times `seed` into a fresh, migrated database.
 *
 *   node_modules/.bin/tsc -p tsconfig.json --outDir dist
 *   node dist/bench/seed-speed.js --messages 1000000 [--merchants 1] [--seed 1]
 *
 * With DATABASE_URL (a role allowed to create databases) the scratch database is created on that
 * server, otherwise on an embedded PostgreSQL; either way it is dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createPool } from '../db/connection.js';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../db/embedded.js';
import { migratePool } from '../db/migrate.js';
import { seed } from '../db/seed.js';

function numberArgument(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new TypeError(`Expected --${name} to be an integer, got ${JSON.stringify(text)}`);
  return value;
}

async function onAdmin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { messages: { type: 'string' }, merchants: { type: 'string' }, seed: { type: 'string' } },
  });
  const messages = numberArgument('messages', values.messages, 1_000_000);
  const merchants = numberArgument('merchants', values.merchants, 1);
  const seedValue = numberArgument('seed', values.seed, 1);

  let embedded: EmbeddedDatabase | undefined;
  const configured = process.env.DATABASE_URL;
  const admin = configured !== undefined && configured !== '' ? configured : (embedded = await startEmbeddedPostgres()).url;
  const name = `audit_export_bench_${randomBytes(6).toString('hex')}`;
  const url = new URL(admin);
  url.pathname = `/${name}`;
  await onAdmin(admin, `CREATE DATABASE ${name}`);
  const pool = createPool(url.toString(), { applicationName: 'audit-export-bench', max: 2 });
  try {
    await migratePool(pool);
    const summary = await seed(pool, { merchants, messages, seed: seedValue });
    const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
    console.log(JSON.stringify({ ...summary, seconds: Number(summary.seconds.toFixed(2)), rssMiB: rss }));
  } finally {
    await pool.end();
    await onAdmin(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await embedded?.stop();
  }
}

await main();
