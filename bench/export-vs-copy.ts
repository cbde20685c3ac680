/**
 * Times the conversation export against PostgreSQL's own COPY of the same rows (formatted in SQL,
 * deflated at level 6 in Node and discarded: the floor the export is held to), and against
 * `psql \copy ... | zip -6`; the export to a local zip (in a bench child, and as the whole CLI
 * process), and to gs:// on the fake Cloud Storage; and the mailer sending 100 e-mails to a local
 * SMTP server. Runs interleave (A B C ... A B C ...), each in its own process (bench/child.ts, the
 * CLI, psql and zip), so each run's peak RSS is its own; the test servers run here, in the parent.
 *
 *   npm run bench -- [--messages 1000000[,5000000...]] [--runs 3] [--skip psql,cli,gcs,mailer]
 *                    [--verify-zip] [--mail-rate-limit 100000]
 *
 * With DATABASE_URL it seeds (once) a database `audit_export_bench_<messages>` on that server and
 * reuses it on later runs; otherwise it uses an embedded PostgreSQL for this run only. It prints a
 * markdown table per size and writes every figure to bench/results.json. A benchmark, not a test:
 * it fails only when something breaks, never for being slow.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { createPool } from '../db/connection.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.js';
import { migratePool, migrateState } from '../db/migrate.js';
import { seed } from '../db/seed.js';
import { createTestServiceAccount, startFakeGcs, type FakeGcs } from '../test/support/fake-gcs.js';
import { BASELINE_SELECT, EXPORT_REQUEST, TIME_ZONE, type ChildResult } from './child.js';
import { MAIL_ANNOUNCEMENTS, MAIL_RECIPIENTS_EACH, startMailBench, type MailBench } from './mailer.js';
import {
  flatness,
  formatFlatness,
  formatTable,
  MODE_LABELS,
  MODES,
  summarise,
  type Flatness,
  type Mode,
  type ModeSummary,
  type RunFigures,
} from './report.js';

const BUCKET = 'audit-exports';
const CLI_PATH = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const CHILD_PATH = fileURLToPath(new URL('./child.js', import.meta.url));
const RESULTS_PATH = fileURLToPath(new URL('../../bench/results.json', import.meta.url));
const GNU_TIME = '/usr/bin/time';
const MiB = 1024 * 1024;
const execFileAsync = promisify(execFile);

/** The baseline's query for psql: a backslash command ends at the end of its line. */
const PSQL_COPY = `\\copy (${BASELINE_SELECT.replace(/\s+/g, ' ')}) to stdout with (format csv)`;

/** Runs one measured child (bench/child.ts) with `args`; its figures are its last stdout line. */
async function runChild(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ChildResult> {
  // The same V8 flag the CLI's shebang and the Dockerfile's entrypoint set.
  const child = spawn(process.execPath, ['--max-semi-space-size=16', CHILD_PATH, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`bench/child.js ${args[0]} failed with exit code ${code}`);
  return JSON.parse(out.trim().split('\n').pop() ?? '') as ChildResult;
}

/**
 * The built CLI, `audit-export export conversations --out file://DIR`, as a user runs it: wall
 * time from spawning to exit (start-up and module loading included), peak RSS from GNU time (null
 * without it).
 */
async function runCli(url: string, directory: string): Promise<ChildResult> {
  const timing = existsSync(GNU_TIME);
  const rssFile = join(directory, 'cli.rss');
  const args = ['--max-semi-space-size=16', CLI_PATH, 'export', 'conversations', '--merchant', EXPORT_REQUEST.merchantId];
  args.push('--from', EXPORT_REQUEST.from, '--to', EXPORT_REQUEST.to, '--out', `file://${directory}`);
  const [command, commandArgs] = timing ? [GNU_TIME, ['-f', '%M', '-o', rssFile, process.execPath, ...args]] : [process.execPath, args];
  const started = performance.now();
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn' } });
  let out = '';
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4_000)));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`audit-export export conversations failed with exit code ${code}:\n${log}`);
  const summary = JSON.parse(out.trim().split('\n').pop() ?? '') as { rows: number; bytes: number; uri: string };
  const kib = timing ? Number(await readRss(rssFile)) : Number.NaN;
  return { seconds, rows: summary.rows, bytes: summary.bytes, maxRssMiB: Number.isFinite(kib) ? kib / 1024 : null, uri: summary.uri };
}

/**
 * `psql \copy (...) to stdout | zip -6 - -`, counted by `wc -c`. Peak RSS is psql's plus zip's,
 * each from GNU time, or null without it. psql reports no row count for a copy to stdout.
 */
async function runPsql(url: string): Promise<RunFigures> {
  const timing = existsSync(GNU_TIME);
  const scratch = await mkdtemp(join(tmpdir(), 'audit-export-bench-psql-'));
  const psqlRss = join(scratch, 'psql.rss');
  const zipRss = join(scratch, 'zip.rss');
  const timed = (file: string): string => (timing ? `${GNU_TIME} -f %M -o ${file} ` : '');
  const script = `set -o pipefail; ${timed(psqlRss)}psql -X -q -v ON_ERROR_STOP=1 -d "$BENCH_URL" -c "$BENCH_COPY" | ${timed(zipRss)}zip -6 -q - - | wc -c`;
  try {
    const started = performance.now();
    const child = spawn('/bin/bash', ['-c', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      // PGTZ sets the session's TimeZone, as SET LOCAL does for the baseline.
      env: { ...process.env, BENCH_URL: url, BENCH_COPY: PSQL_COPY, PGTZ: TIME_ZONE },
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const seconds = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`psql | zip failed with exit code ${code}`);
    const kib = timing ? Number(await readRss(psqlRss)) + Number(await readRss(zipRss)) : Number.NaN;
    return { seconds, rows: null, bytes: Number(out.trim()), maxRssMiB: Number.isFinite(kib) ? kib / 1024 : null };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** GNU time's `%M` (KiB), its last line (earlier ones would be a child's signal notice). */
async function readRss(file: string): Promise<string> {
  return (await readFile(file, 'utf8')).trim().split('\n').pop() ?? '';
}

/** Resolves `which name` to whether the tool exists on PATH. */
async function onPath(name: string): Promise<boolean> {
  try {
    await execFileAsync('/bin/sh', ['-c', `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}

async function prepareDatabase(admin: string, name: string, messages: number | undefined): Promise<string> {
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const adminClient = new pg.Client({ connectionString: admin });
  await adminClient.connect();
  const exists = (await adminClient.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  if (!exists) await adminClient.query(`CREATE DATABASE ${name}`);
  await adminClient.end();
  const pool = createPool(url.toString(), { max: 1 });
  try {
    if (messages === undefined) {
      await migrateState(pool);
    } else if (!exists) {
      await migratePool(pool);
      const seeded = await seed(pool, { merchants: 1, messages });
      await pool.query('VACUUM ANALYZE');
      console.error(`seeded ${seeded.messages} messages in ${seeded.seconds.toFixed(1)} s`);
    }
  } finally {
    await pool.end();
  }
  return url.toString();
}

/** What the results file says about the machine. */
async function machineInfo(admin: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  const settings = async (name: string): Promise<string> => String((await client.query(`SHOW ${name}`)).rows[0]?.[name] ?? '');
  try {
    const version = async (command: string): Promise<string | null> => {
      try {
        return (await execFileAsync('/bin/sh', ['-c', command])).stdout.trim().split('\n')[0] ?? null;
      } catch {
        return null;
      }
    };
    return {
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
      kernel: release(),
      node: process.version,
      postgres: await settings('server_version'),
      postgresSharedBuffers: await settings('shared_buffers'),
      // Other work on the machine skews every figure: the 1, 5 and 15-minute load averages at the start.
      loadAverageAtStart: loadavg().map((load) => Math.round(load * 100) / 100),
      psql: await version('psql --version'),
      zip: await version('zip -v | sed -n 2p'),
    };
  } finally {
    await client.end();
  }
}

/** One check of a kept zip: the command and what it said. */
interface ZipCheck {
  readonly command: string;
  readonly ok: boolean;
  readonly output: string;
}

/** `unzip -t` and Python's `zipfile` (`testzip()` reads and CRC-checks every member). */
async function verifyZip(path: string): Promise<ZipCheck[]> {
  const python = [
    'import sys, zipfile',
    'with zipfile.ZipFile(sys.argv[1]) as z:',
    '    bad = z.testzip()',
    '    print(f"{len(z.infolist())} members, {sum(i.file_size for i in z.infolist())} bytes uncompressed, first bad member: {bad}")',
    '    sys.exit(0 if bad is None else 1)',
  ].join('\n');
  const checks: [string, string[], string][] = [
    ['unzip', ['-t', '-q', path], `unzip -t -q ${path}`],
    ['python3', ['-c', python, path], `python3 -c 'import zipfile; zipfile.ZipFile(PATH).testzip()' ${path}`],
  ];
  const results: ZipCheck[] = [];
  for (const [command, args, shown] of checks) {
    try {
      const { stdout, stderr } = await execFileAsync(command, args, { maxBuffer: 16 * MiB });
      results.push({ command: shown, ok: true, output: `${stdout}${stderr}`.trim() });
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; message: string };
      results.push({ command: shown, ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}`.trim() || failed.message });
    }
  }
  return results;
}

function positiveInteger(flag: string, text: string): number {
  const value = Number(text.replace(/_/g, ''));
  if (!/^[\d_]+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`Expected ${flag} to be a whole number from 1 up, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** The sizes, runs, modes and mail rate asked for on the command line. */
interface BenchOptions {
  readonly sizes: readonly number[];
  readonly runs: number;
  readonly modes: readonly Mode[];
  readonly verifyZip: boolean;
  readonly mailRateLimit: number;
}

function benchOptions(values: Record<string, string | boolean | undefined>): BenchOptions {
  const text = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const sizes = (text('messages') ?? '1000000').split(',').map((part) => positiveInteger('--messages', part.trim()));
  const skip = (text('skip') ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '');
  for (const mode of skip) {
    if (!(MODES as readonly string[]).includes(mode) || mode === 'copy') {
      throw new TypeError(`Expected --skip to list modes among ${MODES.filter((m) => m !== 'copy').join(', ')} (the COPY baseline always runs), got ${JSON.stringify(mode)}`);
    }
  }
  return {
    sizes: [...new Set(sizes)],
    runs: positiveInteger('--runs', text('runs') ?? '3'),
    modes: MODES.filter((mode) => !skip.includes(mode)),
    verifyZip: values['verify-zip'] === true,
    mailRateLimit: positiveInteger('--mail-rate-limit', text('mail-rate-limit') ?? '100000'),
  };
}

/** What the benchmark measured at one size. */
interface SizeResult {
  readonly messages: number;
  readonly modes: Partial<Record<Mode, ModeSummary>>;
  readonly zipChecks?: Record<string, ZipCheck[]>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string' },
      runs: { type: 'string' },
      skip: { type: 'string' },
      'verify-zip': { type: 'boolean' },
      'mail-rate-limit': { type: 'string' },
    },
  });
  const options = benchOptions(values);
  const notes: string[] = [];
  let modes = [...options.modes];
  if (modes.includes('psql') && !((await onPath('psql')) && (await onPath('zip')))) {
    notes.push('psql | zip skipped: psql or zip is not on PATH');
    modes = modes.filter((mode) => mode !== 'psql');
  }
  if (modes.includes('psql') && !existsSync(GNU_TIME)) notes.push(`psql | zip peak RSS not measured: no ${GNU_TIME}`);

  const configured = process.env.DATABASE_URL;
  let embedded: EmbeddedDatabase | undefined;
  let fake: FakeGcs | undefined;
  let mail: MailBench | undefined;
  const scratch = await mkdtemp(join(tmpdir(), 'audit-export-bench-'));
  try {
    const admin = configured !== undefined && configured !== '' ? configured : (embedded = await startEmbeddedPostgres()).url;
    const urls = new Map<number, string>();
    for (const messages of options.sizes) urls.set(messages, await prepareDatabase(admin, `audit_export_bench_${messages}`, messages));
    const machine = await machineInfo(admin);
    console.error(`machine: ${JSON.stringify(machine)}`);

    if (modes.includes('gcs') || modes.includes('mailer')) {
      // In this (the parent) process, so that the measured child's RSS is the export's alone; on
      // disk, so that multi-GB objects cost no memory.
      fake = await startFakeGcs({ buckets: [BUCKET], directory: await mkdtemp(join(scratch, 'gcs-')) });
    }
    if (modes.includes('mailer') && fake !== undefined) {
      try {
        const account = await createTestServiceAccount(fake, scratch);
        mail = await startMailBench({
          cliPath: CLI_PATH,
          stateUrl: await prepareDatabase(admin, 'audit_export_bench_state', undefined),
          gcsUrl: fake.url,
          keyFile: account.keyFile,
          rateLimit: options.mailRateLimit,
        });
      } catch (error) {
        notes.push(`mailer skipped: ${(error as Error).message.split('\n')[0]}`);
        modes = modes.filter((mode) => mode !== 'mailer');
      }
    }
    const gcsEnv: NodeJS.ProcessEnv = { ...process.env, GCS_API_ENDPOINT: fake?.url, METADATA_SERVER_DETECTION: 'none' };
    delete gcsEnv.STORAGE_EMULATOR_HOST;

    const sizes: SizeResult[] = [];
    for (const messages of options.sizes) {
      const url = urls.get(messages) ?? '';
      const runs = new Map<Mode, RunFigures[]>(modes.map((mode) => [mode, []]));
      const kept = new Map<string, string>();
      for (let run = 1; run <= options.runs; run++) {
        const last = run === options.runs;
        for (const mode of modes) {
          let figures: RunFigures;
          if (mode === 'copy') {
            figures = await runChild(['copy', url]);
          } else if (mode === 'psql') {
            figures = await runPsql(url);
          } else if (mode === 'export') {
            const directory = await mkdtemp(join(scratch, 'zip-'));
            const result = await runChild(['export', url, `file://${directory}`]);
            figures = result;
            if (last && options.verifyZip && result.uri !== undefined) kept.set('local zip', fileURLToPath(result.uri));
            else await rm(directory, { recursive: true, force: true });
          } else if (mode === 'cli') {
            const directory = await mkdtemp(join(scratch, 'cli-'));
            figures = await runCli(url, directory);
            await rm(directory, { recursive: true, force: true });
          } else if (mode === 'gcs') {
            const result = await runChild(['export', url, `gs://${BUCKET}/bench-${messages}`], gcsEnv);
            figures = result;
            const name = (result.uri ?? '').slice(`gs://${BUCKET}/`.length);
            const file = fake?.fileOf(BUCKET, name);
            if (last && options.verifyZip && file !== undefined) kept.set('gs:// object (as the test server stored it)', file);
            else await fetch(`${fake?.url}/storage/v1/b/${BUCKET}/o/${encodeURIComponent(name)}`, { method: 'DELETE' });
          } else {
            figures = await (mail as MailBench).run(run);
          }
          runs.get(mode)?.push(figures);
          console.error(
            `${messages} messages, ${mode} run ${run}: ${figures.seconds.toFixed(2)} s, ` +
              `${figures.maxRssMiB === null ? 'RSS n/a' : `${Math.round(figures.maxRssMiB)} MiB`}`,
          );
        }
      }
      const copyRuns = runs.get('copy') ?? [];
      const baseline = summarise('copy', copyRuns, undefined);
      const summaries = modes.map((mode) =>
        summarise(mode, runs.get(mode) ?? [], baseline.medianSeconds, mode === 'psql' ? (copyRuns[0]?.rows ?? undefined) : undefined),
      );
      let zipChecks: Record<string, ZipCheck[]> | undefined;
      if (kept.size > 0) {
        zipChecks = {};
        for (const [what, path] of kept) zipChecks[what] = await verifyZip(path);
      }
      sizes.push({ messages, modes: Object.fromEntries(summaries.map((summary) => [summary.mode, summary])), ...(zipChecks === undefined ? {} : { zipChecks }) });
      console.log(`\n${formatTable(messages, summaries)}`);
      if (zipChecks !== undefined) {
        for (const [what, checks] of Object.entries(zipChecks)) {
          console.log(`\n${what}:`);
          for (const check of checks) console.log(`- \`${check.command}\`: ${check.ok ? 'ok' : 'FAILED'}; ${check.output.split('\n').pop()}`);
        }
      }
      for (const path of kept.values()) await rm(path, { force: true });
    }

    const flat: Flatness[] = [];
    for (const mode of ['export', 'cli', 'gcs'] as const) {
      const bySize = new Map<number, number>();
      for (const size of sizes) {
        const rss = size.modes[mode]?.peakRssMiB;
        if (rss !== undefined && rss !== null) bySize.set(size.messages, rss);
      }
      const result = flatness(mode, bySize);
      if (result !== undefined) flat.push(result);
    }
    if (flat.length > 0) console.log(`\n${flat.map(formatFlatness).join('\n')}`);
    const loadAtEnd = loadavg().map((load) => Math.round(load * 100) / 100);
    notes.push(`load average (1, 5, 15 min) at the start ${JSON.stringify(machine.loadAverageAtStart)}, at the end ${JSON.stringify(loadAtEnd)} on ${cpus().length} cores`);
    if (modes.includes('mailer')) {
      notes.push(
        `mailer: ${MAIL_ANNOUNCEMENTS} announcements x ${MAIL_RECIPIENTS_EACH} recipients, timed from publishing to the 100th e-mail the SMTP server accepted ` +
          `(after one warm-up e-mail), MAIL_RATE_LIMIT=${options.mailRateLimit} (the limit lifted: our throughput, not the production pace of 10/s), ` +
          `MAIL_MAX_CONNECTIONS and --concurrency at their defaults; peak RSS is the mailer process's VmHWM`,
      );
    }
    if (modes.includes('psql')) notes.push('psql | zip: rows/s from the baseline\'s row count (the same query; psql reports none for \\copy to stdout); peak RSS is psql\'s plus zip\'s');
    for (const note of notes) console.log(`\nnote: ${note}`);

    await writeFile(
      RESULTS_PATH,
      `${JSON.stringify(
        {
          machine: { ...machine, loadAverageAtEnd: loadAtEnd },
          options: { ...options, modes, databaseUrl: configured === undefined || configured === '' ? 'embedded PostgreSQL (this run only)' : 'DATABASE_URL' },
          labels: MODE_LABELS,
          sizes,
          peakRssFlatness: flat,
          notes,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nfigures written to ${RESULTS_PATH}`);
  } finally {
    await mail?.close();
    await fake?.close();
    await embedded?.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
