/**
 * Times the conversation export against PostgreSQL's own COPY of the same rows (formatted in SQL,
 * deflated at level 6 in Node and discarded: the floor the export is held to), and against
 * `psql \copy ... | zip -6`; the export to a local zip (in a bench child, and as the whole CLI
 * process launched with and without V8 flags), and to gs:// on the fake Cloud Storage; and the
 * mailer sending 100 e-mails to a local SMTP server. Runs interleave (A B C ... A B C ...), each in
 * its own process (bench/child.ts, the CLI, psql and zip), so each run's peak RSS and CPU are its
 * own; the test servers run here, in the parent. The PostgreSQL backends' CPU of each run is read
 * from the postmaster (bench/backend-cpu.ts). The last zip of each zip row is read back: the sha256
 * of its CSV (equal across rows, and comparable between bench runs) and zip -6's size of that CSV.
 *
 *   npm run bench -- [--messages 1000000[,5000000...]] [--runs 3] [--skip psql,cli,cli-plain,gcs,mailer]
 *                    [--verify-zip] [--mail-rate-limit 100000] [--expect-csv-sha256 [MESSAGES=]HASH,...]
 *
 * With DATABASE_URL it seeds (once) a database `audit_export_bench_<messages>` on that server and
 * reuses it on later runs; otherwise it uses an embedded PostgreSQL for this run only. It prints a
 * markdown table per size and writes every figure to bench/results.json. A benchmark, not a test:
 * it fails only when something breaks (a different CSV included), never for being slow.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { SEMI_SPACE_MIB, SEMI_SPACE_OPTION } from '../cli/launch.js';
import { createPool } from '../db/connection.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.js';
import { migratePool, migrateState } from '../db/migrate.js';
import { seed } from '../db/seed.js';
import { createTestServiceAccount, startFakeGcs, type FakeGcs } from '../test/support/fake-gcs.js';
import { backendCpuMeter, type BackendCpuMeter } from './backend-cpu.js';
import { BASELINE_SELECT, EXPORT_REQUEST, TIME_ZONE, type ChildResult } from './child.js';
import { csvDigest } from './outputs.js';
import { MAIL_ANNOUNCEMENTS, MAIL_RECIPIENTS_EACH, startMailBench, type MailBench } from './mailer.js';
import {
  checkOutputs,
  flatness,
  formatFlatness,
  formatOutputCheck,
  formatTable,
  MODE_LABELS,
  MODES,
  parseExpectedHashes,
  summarise,
  ZIP_MODES,
  type CsvDigest,
  type Flatness,
  type Mode,
  type ModeSummary,
  type OutputCheck,
  type RunFigures,
  type ZipMode,
} from './report.js';

const BUCKET = 'audit-exports';
const CLI_PATH = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const CHILD_PATH = fileURLToPath(new URL('./child.js', import.meta.url));
const RESULTS_PATH = fileURLToPath(new URL('../../bench/results.json', import.meta.url));
const GNU_TIME = '/usr/bin/time';
const MiB = 1024 * 1024;
const execFileAsync = promisify(execFile);
/** The V8 flag the CLI applies itself (cli/launch.ts), given to the bench children, which are not the CLI. */
const SEMI_SPACE_FLAG = `${SEMI_SPACE_OPTION}=${SEMI_SPACE_MIB}`;
/** GNU time's format: peak RSS (KiB), user and system seconds. */
const TIME_FORMAT = '%M %U %S';

/** The baseline's query for psql: a backslash command ends at the end of its line. */
const PSQL_COPY = `\\copy (${BASELINE_SELECT.replace(/\s+/g, ' ')}) to stdout with (format csv)`;

/** Runs one measured child (bench/child.ts) with `args`; its figures are its last stdout line. */
async function runChild(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ChildResult> {
  // The same V8 flag the CLI applies to itself, whichever way it is launched.
  const child = spawn(process.execPath, [SEMI_SPACE_FLAG, CHILD_PATH, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`bench/child.js ${args[0]} failed with exit code ${code}`);
  return JSON.parse(out.trim().split('\n').pop() ?? '') as ChildResult;
}

/** GNU time's `%M %U %S` line: peak RSS MiB and CPU seconds (user + system); NaN where unreadable. */
interface TimeFigures {
  readonly maxRssMiB: number;
  readonly cpuSeconds: number;
}

async function readTime(file: string): Promise<TimeFigures> {
  const [kib, user, system] = (await readLast(file)).split(/\s+/).map(Number);
  return { maxRssMiB: Number(kib) / 1024, cpuSeconds: Number(user) + Number(system) };
}

const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null);

/**
 * The built CLI, `export conversations --out file://DIR`, as a user runs it: wall time from
 * spawning to exit (start-up and module loading included), peak RSS and CPU from GNU time (null
 * without it). `flags`: `node --max-semi-space-size=2 dist/cli/main.js`, as the shebang, `npm
 * start` and the container launch it; `plain`: `node dist/cli/main.js`, no V8 flags (NODE_OPTIONS
 * unset too), as anyone may launch it: the CLI relaunches itself with the limit, and GNU time
 * counts both images of the one process (execve keeps the pid and its CPU times).
 */
async function runCli(url: string, directory: string, launch: 'flags' | 'plain'): Promise<ChildResult> {
  const timing = existsSync(GNU_TIME);
  const timeFile = join(directory, 'cli.time');
  const args = [...(launch === 'flags' ? [SEMI_SPACE_FLAG] : []), CLI_PATH, 'export', 'conversations', '--merchant', EXPORT_REQUEST.merchantId];
  args.push('--from', EXPORT_REQUEST.from, '--to', EXPORT_REQUEST.to, '--out', `file://${directory}`);
  const [command, commandArgs] = timing ? [GNU_TIME, ['-f', TIME_FORMAT, '-o', timeFile, process.execPath, ...args]] : [process.execPath, args];
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn' };
  if (launch === 'plain') delete env.NODE_OPTIONS;
  const started = performance.now();
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4_000)));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`audit-export export conversations failed with exit code ${code}:\n${log}`);
  const summary = JSON.parse(out.trim().split('\n').pop() ?? '') as { rows: number; bytes: number; uri: string };
  const time = timing ? await readTime(timeFile) : { maxRssMiB: Number.NaN, cpuSeconds: Number.NaN };
  return {
    seconds,
    rows: summary.rows,
    bytes: summary.bytes,
    maxRssMiB: finiteOrNull(time.maxRssMiB),
    cpuSeconds: finiteOrNull(time.cpuSeconds),
    uri: summary.uri,
  };
}

/**
 * `psql \copy (...) to stdout | zip -6 - -`, counted by `wc -c`. Peak RSS and CPU are psql's plus
 * zip's, each from GNU time, or null without it. psql reports no row count for a copy to stdout.
 */
async function runPsql(url: string): Promise<RunFigures> {
  const timing = existsSync(GNU_TIME);
  const scratch = await mkdtemp(join(tmpdir(), 'audit-export-bench-psql-'));
  const psqlTime = join(scratch, 'psql.time');
  const zipTime = join(scratch, 'zip.time');
  const timed = (file: string): string => (timing ? `${GNU_TIME} -f '${TIME_FORMAT}' -o ${file} ` : '');
  const script = `set -o pipefail; ${timed(psqlTime)}psql -X -q -v ON_ERROR_STOP=1 -d "$BENCH_URL" -c "$BENCH_COPY" | ${timed(zipTime)}zip -6 -q - - | wc -c`;
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
    const [psql, zip] = timing ? [await readTime(psqlTime), await readTime(zipTime)] : [undefined, undefined];
    return {
      seconds,
      rows: null,
      bytes: Number(out.trim()),
      maxRssMiB: finiteOrNull((psql?.maxRssMiB ?? Number.NaN) + (zip?.maxRssMiB ?? Number.NaN)),
      cpuSeconds: finiteOrNull((psql?.cpuSeconds ?? Number.NaN) + (zip?.cpuSeconds ?? Number.NaN)),
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** GNU time's output, its last line (earlier ones would be a child's signal notice). */
async function readLast(file: string): Promise<string> {
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

/** The sizes, runs, modes, mail rate and expected CSV hashes asked for on the command line. */
interface BenchOptions {
  readonly sizes: readonly number[];
  readonly runs: number;
  readonly modes: readonly Mode[];
  readonly verifyZip: boolean;
  readonly mailRateLimit: number;
  /** `--expect-csv-sha256`, by message count. */
  readonly expectCsvSha256: Readonly<Record<string, string>>;
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
  const unique = [...new Set(sizes)];
  return {
    sizes: unique,
    runs: positiveInteger('--runs', text('runs') ?? '3'),
    modes: MODES.filter((mode) => !skip.includes(mode)),
    verifyZip: values['verify-zip'] === true,
    mailRateLimit: positiveInteger('--mail-rate-limit', text('mail-rate-limit') ?? '100000'),
    expectCsvSha256: Object.fromEntries([...parseExpectedHashes(text('expect-csv-sha256'), unique)].map(([messages, hash]) => [String(messages), hash])),
  };
}

/** What the benchmark measured at one size. */
interface SizeResult {
  readonly messages: number;
  readonly modes: Partial<Record<Mode, ModeSummary>>;
  /** The CSV read back from each zip row's last zip: its hash, and zip -6's size of it. */
  readonly output: OutputCheck;
  readonly zipChecks?: Record<string, ZipCheck[]>;
}

/** What `--verify-zip` calls each row's kept zip (the export's and the gs:// object's, as before). */
const VERIFY_LABELS: Readonly<Partial<Record<ZipMode, string>>> = {
  export: 'local zip',
  gcs: 'gs:// object (as the test server stored it)',
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string' },
      runs: { type: 'string' },
      skip: { type: 'string' },
      'verify-zip': { type: 'boolean' },
      'mail-rate-limit': { type: 'string' },
      'expect-csv-sha256': { type: 'string' },
    },
  });
  const options = benchOptions(values);
  const notes: string[] = [];
  let modes = [...options.modes];
  if (modes.includes('psql') && !((await onPath('psql')) && (await onPath('zip')))) {
    notes.push('psql | zip skipped: psql or zip is not on PATH');
    modes = modes.filter((mode) => mode !== 'psql');
  }
  if (!existsSync(GNU_TIME)) notes.push(`peak RSS and CPU of psql | zip and of the CLI rows not measured: no ${GNU_TIME}`);
  const rezip = await onPath('zip');
  if (!rezip) notes.push('zip vs zip -6 not measured: zip is not on PATH');

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
    const backends: BackendCpuMeter | undefined = await backendCpuMeter(admin);
    if (backends === undefined) notes.push('PostgreSQL backend CPU not measured: the server is not a process on this machine');

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
          putObject: (bucket, name) => (fake as FakeGcs).putObject(bucket, name, Buffer.from('PK\x05\x06'.padEnd(22, '\0'), 'latin1')),
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
    const problems: string[] = [];
    for (const messages of options.sizes) {
      const url = urls.get(messages) ?? '';
      const runs = new Map<Mode, RunFigures[]>(modes.map((mode) => [mode, []]));
      // The last run's zip of each zip row, read back after the size's runs (untimed).
      const kept = new Map<ZipMode, string>();
      for (let run = 1; run <= options.runs; run++) {
        const last = run === options.runs;
        for (const mode of modes) {
          let figures: RunFigures;
          // The backends of this run only: every connection the measured process opened has closed by the time it exits.
          const mark = mode === 'mailer' ? undefined : await backends?.mark();
          if (mode === 'copy') {
            figures = await runChild(['copy', url]);
          } else if (mode === 'psql') {
            figures = await runPsql(url);
          } else if (mode === 'export' || mode === 'cli' || mode === 'cli-plain') {
            const directory = await mkdtemp(join(scratch, `${mode}-`));
            const result =
              mode === 'export' ? await runChild(['export', url, `file://${directory}`]) : await runCli(url, directory, mode === 'cli' ? 'flags' : 'plain');
            figures = result;
            if (last && result.uri !== undefined) kept.set(mode, fileURLToPath(result.uri));
            else await rm(directory, { recursive: true, force: true });
          } else if (mode === 'xlsx') {
            const directory = await mkdtemp(join(scratch, 'xlsx-'));
            figures = await runChild(['export', url, `file://${directory}`, 'xlsx']);
            await rm(directory, { recursive: true, force: true });
          } else if (mode === 'gcs') {
            const result = await runChild(['export', url, `gs://${BUCKET}/bench-${messages}`], gcsEnv);
            figures = result;
            const name = (result.uri ?? '').slice(`gs://${BUCKET}/`.length);
            const file = fake?.fileOf(BUCKET, name);
            if (last && file !== undefined) kept.set('gcs', file);
            else await fetch(`${fake?.url}/storage/v1/b/${BUCKET}/o/${encodeURIComponent(name)}`, { method: 'DELETE' });
          } else {
            figures = await (mail as MailBench).run(run);
          }
          if (mark !== undefined && backends !== undefined) figures = { ...figures, backendCpuSeconds: await backends.since(mark) };
          runs.get(mode)?.push(figures);
          console.error(
            `${messages} messages, ${mode} run ${run}: ${figures.seconds.toFixed(2)} s, ` +
              `${figures.maxRssMiB === null ? 'RSS n/a' : `${Math.round(figures.maxRssMiB)} MiB`}, ` +
              `CPU ${typeof figures.cpuSeconds === 'number' ? `${figures.cpuSeconds.toFixed(2)} s` : 'n/a'}` +
              `${typeof figures.backendCpuSeconds === 'number' ? ` + backend ${figures.backendCpuSeconds.toFixed(2)} s` : ''}`,
          );
        }
      }
      // Every zip row's CSV hashed, in the zip's member order; the first one also through zip -6.
      const digests: Partial<Record<ZipMode, CsvDigest>> = {};
      let zip6Bytes: number | undefined;
      for (const mode of ZIP_MODES) {
        const path = kept.get(mode);
        if (path === undefined) continue;
        const digest = await csvDigest(path, rezip && zip6Bytes === undefined);
        digests[mode] = { sha256: digest.sha256, csvBytes: digest.csvBytes };
        zip6Bytes ??= digest.zip6Bytes;
      }
      const output = checkOutputs(digests, zip6Bytes, options.expectCsvSha256[String(messages)]);
      problems.push(...output.problems.map((problem) => `${messages} messages: ${problem}`));

      const copyRuns = runs.get('copy') ?? [];
      const baseline = summarise('copy', copyRuns, undefined);
      const summaries = modes.map((mode) =>
        summarise(
          mode,
          runs.get(mode) ?? [],
          baseline.medianSeconds,
          mode === 'psql' ? (copyRuns[0]?.rows ?? undefined) : undefined,
          // A workbook is no zip of the CSV: its size is not compared with zip -6's.
          mode === 'xlsx' ? undefined : zip6Bytes,
        ),
      );
      let zipChecks: Record<string, ZipCheck[]> | undefined;
      if (options.verifyZip) {
        zipChecks = {};
        for (const [mode, what] of Object.entries(VERIFY_LABELS) as [ZipMode, string][]) {
          const path = kept.get(mode);
          if (path !== undefined) zipChecks[what] = await verifyZip(path);
        }
      }
      sizes.push({ messages, modes: Object.fromEntries(summaries.map((summary) => [summary.mode, summary])), output, ...(zipChecks === undefined ? {} : { zipChecks }) });
      console.log(`\n${formatTable(messages, summaries)}`);
      const csvExport = summaries.find((summary) => summary.mode === 'export');
      const workbook = summaries.find((summary) => summary.mode === 'xlsx');
      if (csvExport !== undefined && workbook !== undefined) {
        const wall = workbook.medianSeconds / csvExport.medianSeconds;
        const rss = (workbook.peakRssMiB ?? 0) / (csvExport.peakRssMiB ?? 1);
        const bytes = (workbook.runs.at(-1)?.bytes ?? 0) / (csvExport.runs.at(-1)?.bytes ?? 1);
        console.log(
          `\nxlsx vs the CSV export, same run: wall ${wall.toFixed(2)}x (target <= 1.5x: ${wall <= 1.5 ? 'met' : 'missed'}), ` +
            `peak RSS ${rss.toFixed(2)}x (target within 10%: ${Math.abs(rss - 1) <= 0.1 ? 'met' : 'missed'}), file ${bytes.toFixed(2)}x the zip's bytes`,
        );
      }
      console.log(`\n${formatOutputCheck(output)}`);
      for (const problem of output.problems) console.log(`\nFAILED: ${problem}`);
      if (zipChecks !== undefined) {
        for (const [what, checks] of Object.entries(zipChecks)) {
          console.log(`\n${what}:`);
          for (const check of checks) console.log(`- \`${check.command}\`: ${check.ok ? 'ok' : 'FAILED'}; ${check.output.split('\n').pop()}`);
        }
      }
      for (const path of kept.values()) await rm(path, { force: true });
    }

    const flat: Flatness[] = [];
    for (const mode of ['export', 'cli', 'cli-plain', 'gcs'] as const) {
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
    if (modes.includes('psql')) {
      notes.push('psql | zip: rows/s from the baseline\'s row count (the same query; psql reports none for \\copy to stdout); peak RSS and CPU are psql\'s plus zip\'s');
    }
    notes.push(
      'CPU s / 1M rows: user + system of the measured process(es), every thread and start-up included (bench children: process.resourceUsage(); ' +
        'the CLI rows, psql and zip: GNU time); + PG backend: the PostgreSQL backends that served the run (the postmaster\'s reaped children\'s CPU); ' +
        'zip vs zip -6: median bytes over `zip -6 - -` of the CSV read back from the last zip (the psql row zips its own SQL-formatted CSV)',
    );
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
          problems,
          notes,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nfigures written to ${RESULTS_PATH}`);
    // After the figures are out: a different CSV is a break, never a matter of speed.
    if (problems.length > 0) throw new Error(`the export's output is not what it should be:\n${problems.join('\n')}`);
  } finally {
    await mail?.close();
    await fake?.close();
    await embedded?.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
