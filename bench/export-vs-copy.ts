/**
 * Times a conversation export against PostgreSQL's own COPY of the same rows, formatted in SQL,
 * deflated at level 6 and discarded: the floor the export is held to. Runs interleave (A B A B ...)
 * in child processes, so each run's peak RSS is its own.
 *
 *   npm run build && node dist/bench/export-vs-copy.js [--messages 1000000] [--runs 3]
 *
 * With DATABASE_URL it seeds (once) a database `audit_export_bench_<messages>` on that server and
 * reuses it on later runs; otherwise it uses an embedded PostgreSQL for this run only.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createDeflateRaw } from 'node:zlib';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import pino from 'pino';
import { createPool } from '../db/connection.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.js';
import { migratePool } from '../db/migrate.js';
import { seed } from '../db/seed.js';
import { runConversationExport } from '../jobs/conversations/job.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { FileOutputTarget } from '../sinks/file.js';

const RANGE = { from: '2026-09-01', to: '2026-10-31' };

/** The baseline: the export's rows and columns, every rule done by PostgreSQL, as COPY CSV. */
const BASELINE_SQL = `COPY (
SELECT c.id, c.merchant_id, c.provider, to_char(c.created_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(m.created_at, 'YYYY-MM-DD HH24:MI:SS'),
  c.contact_id, ct.identification, ct.name, ct.email, ct.phone_number, ct.mobile_number,
  c.agent_id, a.name, a.username, a.email, m.sender = 'contact',
  CASE WHEN m.sender = 'contact' THEN CASE WHEN m.type = 'text' THEN m.body ELSE m.media_url END END,
  CASE WHEN m.sender <> 'contact' THEN CASE WHEN m.type = 'text' THEN m.body ELSE m.media_url END END,
  m.type, m.caption, c.alias, b.name, c.status,
  to_char(c.opened_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(c.picked_up_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(c.closed_at, 'YYYY-MM-DD HH24:MI:SS'),
  to_char(justify_hours(date_trunc('second', c.closed_at - coalesce(c.opened_at, c.created_at))), 'DD:HH24:MI:SS')
FROM chats c
JOIN messages m ON m.chat_id = c.id
LEFT JOIN contacts ct ON ct.id = c.contact_id
LEFT JOIN agents a ON a.id = c.agent_id
LEFT JOIN bots b ON b.id = c.bot_id
WHERE c.merchant_id = 1 AND c.created_at >= '2026-09-01T05:00:00Z' AND c.created_at < '2026-10-31T05:00:00Z'
ORDER BY c.created_at, c.id, m.created_at, m.id
) TO STDOUT (FORMAT csv)`;

interface RunFigures {
  readonly seconds: number;
  readonly rows: number;
  readonly bytes: number;
  readonly maxRssMiB: number;
}

async function childBaseline(url: string): Promise<RunFigures> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const started = performance.now();
  let bytes = 0;
  let csvBytes = 0;
  try {
    await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL TimeZone = 'America/Bogota'`);
    const copy = client.query(copyTo(BASELINE_SQL));
    copy.on('data', (chunk: Buffer) => (csvBytes += chunk.length));
    await pipeline(
      copy,
      createDeflateRaw({ level: 6 }),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          callback();
        },
      }),
    );
    await client.query('COMMIT');
    return { seconds: (performance.now() - started) / 1000, rows: copy.rowCount, bytes, maxRssMiB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    await client.end();
  }
}

async function childExport(url: string): Promise<RunFigures> {
  const pool = createPool(url, { applicationName: 'audit-export-bench', max: 1 });
  const directory = await mkdtemp(join(tmpdir(), 'audit-export-bench-'));
  try {
    const started = performance.now();
    const { summary } = await runConversationExport(parseConversationRequest({ merchantId: 1, ...RANGE }), {
      pool,
      output: new FileOutputTarget(directory),
      signal: new AbortController().signal,
      logger: pino({ level: 'silent' }),
    });
    return {
      seconds: (performance.now() - started) / 1000,
      rows: summary.rows,
      bytes: summary.bytes,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await pool.end();
    await rm(directory, { recursive: true, force: true });
  }
}

async function runChild(mode: string, url: string): Promise<RunFigures> {
  // The same V8 flag the CLI's shebang and the Dockerfile's entrypoint set.
  const child = spawn(process.execPath, ['--max-semi-space-size=16', fileURLToPath(import.meta.url), '--child', mode, '--url', url], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`${mode} run failed with exit code ${code}`);
  return JSON.parse(out.trim().split('\n').pop() ?? '') as RunFigures;
}

async function prepareDatabase(messages: number): Promise<{ url: string; embedded?: EmbeddedDatabase }> {
  const configured = process.env.DATABASE_URL;
  let embedded: EmbeddedDatabase | undefined;
  const admin = configured !== undefined && configured !== '' ? configured : (embedded = await startEmbeddedPostgres()).url;
  const name = `audit_export_bench_${messages}`;
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const adminClient = new pg.Client({ connectionString: admin });
  await adminClient.connect();
  const exists = (await adminClient.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  if (!exists) await adminClient.query(`CREATE DATABASE ${name}`);
  await adminClient.end();
  if (!exists) {
    const pool = createPool(url.toString(), { max: 1 });
    await migratePool(pool);
    const seeded = await seed(pool, { merchants: 1, messages });
    await pool.query('VACUUM ANALYZE');
    await pool.end();
    console.error(`seeded ${seeded.messages} messages in ${seeded.seconds.toFixed(1)} s`);
  }
  return { url: url.toString(), embedded };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { messages: { type: 'string' }, runs: { type: 'string' }, child: { type: 'string' }, url: { type: 'string' } },
  });
  if (values.child !== undefined && values.url !== undefined) {
    const figures = values.child === 'baseline' ? await childBaseline(values.url) : await childExport(values.url);
    console.log(JSON.stringify(figures));
    return;
  }
  const messages = Number(values.messages ?? 1_000_000);
  const runs = Number(values.runs ?? 3);
  const { url, embedded } = await prepareDatabase(messages);
  try {
    const results: Record<string, RunFigures[]> = { baseline: [], export: [] };
    for (let run = 0; run < runs; run++) {
      for (const mode of ['baseline', 'export'] as const) {
        const figures = await runChild(mode, url);
        results[mode]!.push(figures);
        console.error(`${mode} run ${run + 1}: ${figures.seconds.toFixed(2)} s, ${Math.round(figures.maxRssMiB)} MiB`);
      }
    }
    const baseline = median(results.baseline!.map((r) => r.seconds));
    console.log('| command | wall s (median) | range | rows/s | zip MB/s | peak RSS MiB | vs COPY |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const [mode, list] of Object.entries(results)) {
      const seconds = list.map((r) => r.seconds);
      const wall = median(seconds);
      const rows = list[0]?.rows ?? 0;
      const bytes = list[0]?.bytes ?? 0;
      console.log(
        `| ${mode === 'baseline' ? 'COPY csv -> deflate 6' : 'export conversations (zip)'} | ${wall.toFixed(2)} | ` +
          `${Math.min(...seconds).toFixed(2)}-${Math.max(...seconds).toFixed(2)} | ${Math.round(rows / wall)} | ` +
          `${(bytes / wall / 1e6).toFixed(1)} | ${Math.round(Math.max(...list.map((r) => r.maxRssMiB)))} | ${(wall / baseline).toFixed(2)}x |`,
      );
    }
  } finally {
    await embedded?.stop();
  }
}

await main();
