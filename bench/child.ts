/**
 * One measured run of the benchmark (bench/export-vs-copy.ts), in a process of its own:
 *
 *   node dist/bench/child.js copy URL        the COPY baseline
 *   node dist/bench/child.js export URL OUT  the conversation export to OUT (file://DIR or gs://...)
 *
 * Prints its figures as one JSON line. Each mode imports only what it runs, so that its peak RSS
 * holds no module the other needs (the parent's test servers and mail libraries above all).
 */
import { fileURLToPath } from 'node:url';
import type { RunFigures } from './report.js';

/** The session zone of the baseline; the export resolves the merchant's own, the same. */
export const TIME_ZONE = 'America/Bogota';

/** The baseline's query: the export's rows and columns, every rule done by PostgreSQL. */
export const BASELINE_SELECT = `SELECT c.id, c.merchant_id, c.provider, to_char(c.created_at, 'YYYY-MM-DD HH24:MI:SS'), to_char(m.created_at, 'YYYY-MM-DD HH24:MI:SS'),
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
ORDER BY c.created_at, c.id, m.created_at, m.id`;

/** The export's request: merchant 1 (America/Bogota), the seed's two months. */
export const EXPORT_REQUEST = { kind: 'conversations', merchantId: '1', from: '2026-09-01', to: '2026-10-31' } as const;

/** What a child prints: its figures, and where an export went. */
export interface ChildResult extends RunFigures {
  readonly uri?: string;
}

/** This process's CPU seconds so far, user + system, every thread (deflate on the thread pool included), start-up included. */
function cpuSeconds(): number {
  const usage = process.resourceUsage();
  return (usage.userCPUTime + usage.systemCPUTime) / 1e6;
}

/** COPY CSV through Node into deflate level 6, discarded. */
async function copyBaseline(url: string): Promise<ChildResult> {
  const [{ default: pg }, { to: copyTo }, { Writable }, { pipeline }, { createDeflateRaw }] = await Promise.all([
    import('pg'),
    import('pg-copy-streams'),
    import('node:stream'),
    import('node:stream/promises'),
    import('node:zlib'),
  ]);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const started = performance.now();
  let bytes = 0;
  try {
    await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL TimeZone = '${TIME_ZONE}'`);
    const copy = client.query(copyTo(`COPY (${BASELINE_SELECT}) TO STDOUT (FORMAT csv)`));
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
    return { seconds: (performance.now() - started) / 1000, rows: copy.rowCount, bytes, maxRssMiB: process.resourceUsage().maxRSS / 1024, cpuSeconds: cpuSeconds() };
  } finally {
    await client.end();
  }
}

/** The export as `export conversations --out OUT` runs it: the same request parsing, output target and report. */
async function exportConversations(url: string, out: string, format: string): Promise<ChildResult> {
  const [{ default: pino }, { createPool }, { parseConversationRequest }, { runReport }, { outputTargetFor }] = await Promise.all([
    import('pino'),
    import('../db/connection.js'),
    import('../jobs/conversations/request.js'),
    import('../jobs/reports.js'),
    import('../sinks/targets.js'),
  ]);
  const pool = createPool(url, { applicationName: 'audit-export-bench' });
  try {
    const started = performance.now();
    const { reports } = await runReport(parseConversationRequest({ ...EXPORT_REQUEST, format }), {
      pool,
      output: outputTargetFor(out),
      signal: new AbortController().signal,
      logger: pino({ level: 'silent' }),
    });
    const [report] = reports;
    if (report === undefined || reports.length !== 1) throw new Error(`Expected one stored zip, got ${reports.length}`);
    return {
      seconds: (performance.now() - started) / 1000,
      rows: report.rows,
      bytes: report.bytes,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
      cpuSeconds: cpuSeconds(),
      uri: report.uri,
    };
  } finally {
    await pool.end();
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const [mode, url, out, format = 'csv'] = argv;
  if (mode === 'copy' && url !== undefined) {
    console.log(JSON.stringify(await copyBaseline(url)));
  } else if (mode === 'export' && url !== undefined && out !== undefined) {
    console.log(JSON.stringify(await exportConversations(url, out, format)));
  } else {
    throw new TypeError(`Expected "copy URL" or "export URL OUT", got ${JSON.stringify(argv)} (export takes an optional FORMAT)`);
  }
}

// Run only as a program: the parent imports the query and the request from here.
if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
