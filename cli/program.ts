import { randomUUID } from 'node:crypto';
import { Command, CommanderError, Option } from 'commander';
import type { Logger } from 'pino';
import { requestLogger } from '../config/logs.js';
import { redactText } from '../config/privacy.js';
import { isAbortError, InvalidRequestError } from '../jobs/errors.js';
import { requestIdOf } from '../jobs/lifecycle/process.js';
import { REQUEST_ID } from '../jobs/request-fields.js';
import { createPool } from '../db/connection.js';
import { migratePool, migrateState } from '../db/migrate.js';
import { seed } from '../db/seed.js';
import { DEMO_SEED } from './database.js';
import { ExitCode } from './exit-codes.js';
import { conversationOptions, exportConversations, type ConversationFlags } from './commands/export-conversations.js';
import { createAnnouncer, type Announcer } from './announcer.js';
import { createLogger, stderrStatusLine } from './logger.js';
import { heapReport } from './launch.js';
import { cliProgress } from './progress.js';
import type { ProgressStarter, StatusLine } from '../pipeline/progress.js';
import { exportStopSlots, stopSlotsOptions, type StopSlotsFlags } from './commands/export-stop-slots.js';
import { backfill, type BackfillFlags } from './commands/backfill.js';

// Commands that talk to Pub/Sub load their modules when they run: @google-cloud/pubsub (gRPC,
// protobufjs) would otherwise add about 20 MiB to every command's heap, exports included.
const mailStep = () => import('./commands/mail-step.js');
const requests = () => import('./commands/requests.js');
const demo = () => import('./commands/demo.js');

/** The JSON summary line: the last line on stdout, which scripts parse. */
function printSummary(summary: object): void {
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

/**
 * A line for people on stderr (`audit-export: failed: ...`). Redacted like the logs: on Cloud Run
 * stderr is collected as logs, and an error may quote an address or a phone number.
 */
function printProblem(text: string): void {
  process.stderr.write(`audit-export: ${redactText(text)}\n`);
}

/** Runs a command's work; a failure is logged with `log()` (the command's request logger, once known). */
export type CommandRunner = (work: () => Promise<void | number>, log?: () => Logger) => Promise<void>;

/**
 * The request id and logger of a command that runs one request: the id given, else a new UUID
 * (the one the request gets), and the logger bound to it, so every line of the command, its
 * failure included, carries the request's label. An invalid id is left for the request's
 * validation to reject, with the plain logger.
 */
function forRequest(logger: Logger, requestId: string | undefined): { requestId: string; log: Logger } {
  const id = requestId ?? randomUUID();
  return { requestId: id, log: REQUEST_ID.test(id) ? requestLogger(logger, id) : logger };
}

function positiveInteger(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new InvalidRequestError(name, `expected a whole number, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

/** Runs `work` with an AbortSignal that SIGINT and SIGTERM abort; a second signal exits at once. */
async function withCancellation<T>(logger: Logger, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(ExitCode.Cancelled);
    logger.warn({ signal }, 'cancelling: cleaning up before exit');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function withConfiguredPool<T>(work: (pool: import('pg').Pool) => Promise<T>): Promise<T> {
  const url = process.env.DATABASE_URL;
  if (url === undefined || url === '') {
    throw new InvalidRequestError('DATABASE_URL', 'not set: this command needs the database it should work on');
  }
  const pool = createPool(url, { applicationName: 'audit-export' });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/**
 * Builds the `audit-export` command tree; `run` decides the exit code. `line` is stderr's status
 * line when stderr is a terminal (progress is then a bar), else undefined (JSON progress lines).
 */
export function buildProgram(logger: Logger, run: CommandRunner, line?: StatusLine): Command {
  // Read when a command runs, so a bad PROGRESS_INTERVAL_MS is that command's invalid request (exit 2).
  const progress = (enabled: boolean, bar = true) => cliProgress({ enabled, logger, line, bar });
  /**
   * The action of an `export` subcommand: one request under its id (given or new), every log line
   * labelled with it, its announcements published through a Pub/Sub announcer, its summary printed.
   */
  const exportAction =
    <Flags extends { readonly requestId?: string; readonly progress: boolean }>(
      exportReport: (flags: Flags & { requestId: string }, log: Logger, signal: AbortSignal, announcer: () => Announcer, progress: ProgressStarter) => Promise<object>,
    ) =>
    (flags: Flags) => {
      const { requestId, log } = forRequest(logger, flags.requestId);
      return run(
        async () =>
          printSummary(await withCancellation(log, (signal) => exportReport({ ...flags, requestId }, log, signal, () => createAnnouncer(log), progress(flags.progress)))),
        () => log,
      );
    };
  const program = new Command('audit-export')
    .description(
      "Exports merchants' chat data from PostgreSQL as spreadsheet-safe CSV in a zip.\n" +
        'Logs go to stderr; on success the last stdout line is a JSON summary.\n' +
        'Exit codes: 0 done, 1 failed, 2 invalid request, 3 cancelled.\n' +
        'Progress: a bar on stderr when it is a terminal, else a JSON line every PROGRESS_INTERVAL_MS\n' +
        '(default 5000; 0 or --no-progress: none).\n' +
        'Environment: DATABASE_URL (unset: an embedded PostgreSQL with demo data), LOG_LEVEL, PROGRESS_INTERVAL_MS.',
    )
    .showHelpAfterError('(add --help for usage)')
    // Commander's own messages quote what was typed; subcommands inherit this.
    .configureOutput({ writeErr: (text) => process.stderr.write(redactText(text)) })
    .exitOverride();

  const exportCommand = program.command('export').description('run one export and print its JSON summary');
  conversationOptions(
    exportCommand
      .command('conversations')
      .summary('one CSV row per message of a merchant\'s chats, zipped')
      .description(
        'one CSV row per message of the chats created in [--from, --to), zipped;\n' +
          'parts of at most --rows-per-file rows, split between chats',
      ),
  ).action(exportAction(exportConversations));

  stopSlotsOptions(
    exportCommand
      .command('stop-slots')
      .summary('per chatbot, the slots on which its dialogs ended: one CSV (and e-mail) per bot')
      .description(
        'For each bot of --merchant (or each --bot), the dialog slots on which its dialogs created in\n' +
          '[--from, --to) ended (dialogs with at least one bot message): one plain CSV per bot,\n' +
          'Slot ID, Slot Name, Slot Text, Dialogs, Share; header only when a bot had no dialogs.',
      ),
  ).action(exportAction(exportStopSlots));

  conversationOptions(
    program
      .command('demo')
      .summary('the whole product on this machine: exports, mail step, local SMTP inbox (what `npm start` runs)')
      .description(
        'A walk-through on the production code paths, nothing configured: with no\n' +
          'DATABASE_URL an embedded PostgreSQL seeded with deterministic data; a\n' +
          'conversation export (zip) and a stop-slots report (a CSV per bot) of the\n' +
          'demo merchant into --out, announced to --email (default merchant@example.com\n' +
          'and ops@example.com) and handed in-process to the mail step, which sends\n' +
          'through a local SMTP server on 127.0.0.1 (whatever SMTP_URL says); each\n' +
          'e-mail received is saved as a .eml file in <--out>/inbox and printed.\n' +
          'Stops what it started when done, failed or cancelled. Logs at warn unless\n' +
          'LOG_LEVEL is set; the last stdout line is a JSON summary. Needs the\n' +
          'development dependencies (npm install).',
      ),
    { merchant: '1', from: '2026-09-01', to: '2026-10-31' },
  ).action((flags: ConversationFlags) =>
    run(async () => {
      // The walk-through narrates every step itself; info logs (progress lines included) would bury
      // it. LOG_LEVEL brings them back.
      const demoLogger = process.env.LOG_LEVEL === undefined || process.env.LOG_LEVEL === '' ? logger.child({}, { level: 'warn' }) : logger;
      const demoProgress = cliProgress({ enabled: flags.progress, logger: demoLogger, line });
      const summary = await withCancellation(logger, (signal) =>
        demo().then(({ runDemo }) => runDemo(flags, demoLogger, signal, demoProgress, (text) => process.stdout.write(text))),
      );
      printSummary(summary);
    }),
  );

  program
    .command('backfill')
    .summary('export [--from, --to) per merchant and month, idempotent, shardable over Cloud Run tasks')
    .description(
      'Splits [--from, --to) into units of one merchant and at most one calendar month (dates are\n' +
        "midnight in the merchant's zone) and runs each as a conversation export of every status, named\n" +
        'after the unit (request id backfill-m<merchant>-<YYYY-MM>), so a rerun skips the units already\n' +
        'stored and retries the failed ones. Task i of N (--task-index/--task-count, else\n' +
        'CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT) takes the units at positions p with p % N == i.\n' +
        'Reads DATABASE_URL, meant to be a read replica, with at most --concurrency connections\n' +
        '(application_name audit-export-backfill). Progress: a bar on a terminal, else a JSON line on\n' +
        'stderr after each unit and every PROGRESS_INTERVAL_MS; the last stdout line\n' +
        'is {"kind":"backfill","units","done","skipped","failed","rows","bytes"} for this task.\n' +
        'Exit codes: 0 every unit done or skipped, 1 a unit failed (named on stderr), 2 invalid flags,\n' +
        '3 cancelled.',
    )
    .requiredOption('--from <date>', 'range start, inclusive: YYYY-MM-DD')
    .requiredOption('--to <date>', 'range end, exclusive: YYYY-MM-DD')
    .option('--merchant <id>', 'only this merchant (repeatable; default every merchant)', (value: string, previous: string[]) => [...previous, value], [])
    .requiredOption('--out <uri>', 'where the zips go: file://DIR or gs://BUCKET/PREFIX')
    .option('--format <csv|xlsx>', 'csv: a zip per unit; xlsx: an Excel workbook (.xlsx) per unit', 'csv')
    .addOption(new Option('--concurrency <n>', 'units exported at once (= database connections)').argParser(positiveInteger('--concurrency')).default(1))
    .option('--task-index <i>', 'this task\'s index, from 0 (default: CLOUD_RUN_TASK_INDEX, else 0)')
    .option('--task-count <n>', 'number of tasks (default: CLOUD_RUN_TASK_COUNT, else 1)')
    .option('--no-progress', 'no progress bar (terminal) nor periodic progress lines; a line per unit is still logged')
    .action((flags: BackfillFlags) =>
      run(async () => {
        const outcome = await withCancellation(logger, (signal) => backfill(flags, logger, signal, progress(flags.progress)));
        printSummary(outcome.summary);
        for (const line of outcome.failures) printProblem(`backfill unit failed: ${line}`);
        return outcome.failures.length > 0 ? ExitCode.Failed : ExitCode.Ok;
      }),
    );

  const db = program.command('db').description('database maintenance (uses DATABASE_URL)');
  db.command('migrate')
    .description(
      'create the source tables and indexes (DATABASE_URL) and the state tables\n' +
        '(STATE_DATABASE_URL, default DATABASE_URL) when missing; idempotent',
    )
    .action(() =>
      run(() =>
        withConfiguredPool(async (pool) => {
          await migratePool(pool);
          logger.info('source tables migrated');
          const stateUrl = process.env.STATE_DATABASE_URL;
          if (stateUrl === undefined || stateUrl === '' || stateUrl === process.env.DATABASE_URL) {
            await migrateState(pool);
          } else {
            const statePool = createPool(stateUrl, { applicationName: 'audit-export' });
            try {
              await migrateState(statePool);
            } finally {
              await statePool.end();
            }
          }
          logger.info('state tables migrated');
        }),
      ),
    );
  db.command('seed')
    .description('append deterministic synthetic chat data (loaded with COPY)')
    .addOption(new Option('--merchants <n>', 'merchants to create').argParser(positiveInteger('--merchants')).default(DEMO_SEED.merchants))
    .addOption(new Option('--messages <n>', 'messages in all').argParser(positiveInteger('--messages')).default(DEMO_SEED.messages))
    .addOption(new Option('--seed <s>', 'random seed: the same seed gives the same data').argParser(positiveInteger('--seed')).default(1))
    .action((flags: { merchants: number; messages: number; seed: number }) =>
      run(() =>
        withConfiguredPool(async (pool) => {
          const summary = await seed(pool, { merchants: flags.merchants, messages: flags.messages, seed: flags.seed });
          printSummary({ kind: 'seed', ...summary });
        }),
      ),
    );
  program
    .command('mailer')
    .summary('the mail step: e-mail download links for ready announcements (streaming pull)')
    .description(
      'Consumes ready announcements from a Pub/Sub subscription and e-mails every recipient a\n' +
        'signed download link, exactly once (recorded in the state database).\n' +
        'Environment: SMTP_URL, MAIL_FROM, MAIL_BRAND, MAIL_SUBJECT, MAIL_MAX_CONNECTIONS, MAIL_RATE_LIMIT,\n' +
        'STATE_DATABASE_URL (default DATABASE_URL), GOOGLE_CLOUD_PROJECT, PUBSUB_EMULATOR_HOST,\n' +
        'GCS_API_ENDPOINT or STORAGE_EMULATOR_HOST, GOOGLE_APPLICATION_CREDENTIALS.',
    )
    .requiredOption('--subscription <name>', 'subscription of the ready topic')
    .addOption(new Option('--concurrency <n>', 'announcements handled at once').argParser(positiveInteger('--concurrency')).default(4))
    .action((flags: { subscription: string; concurrency: number }) =>
      run(() => withCancellation(logger, (signal) => mailStep().then(({ runMailer }) => runMailer(flags, logger, signal)))),
    );
  program
    .command('serve')
    .summary('Pub/Sub push endpoint for announcements (mail step) and requests (POST /pubsub/push, GET /healthz)')
    .description(
      'Accepts Pub/Sub push deliveries of ready announcements on POST /pubsub/push (wrapped or\n' +
        'unwrapped) and answers GET /healthz. With PUSH_AUDIENCE set, a push needs a valid Google OIDC\n' +
        'token for that audience (PUSH_SERVICE_ACCOUNT: the only identity accepted). Same mail settings\n' +
        'as `mailer`.',
    )
    .addOption(new Option('--port <n>', 'TCP port (default: PORT, else 8080)').argParser(positiveInteger('--port')))
    .option('--host <address>', 'interface to listen on', '0.0.0.0')
    .action((flags: { port?: number; host: string }) =>
      run(() =>
        withCancellation(
          logger,
          (signal) =>
            mailStep().then(({ runPushServer }) =>
              runPushServer({ port: flags.port ?? positiveInteger('PORT')(process.env.PORT ?? '8080'), host: flags.host }, logger, signal),
            ),
        ),
      ),
    );
  program
    .command('run')
    .summary('run one export request (a JSON document) through the request lifecycle')
    .description(
      'Runs one export request through the request lifecycle (validation, state, coalescing,\n' +
        'cancel, announcement), for Cloud Run job executions. The request comes from --request FILE,\n' +
        '--request - (stdin) or EXPORT_REQUEST (JSON, or base64 of it); the output is OUTPUT_URI\n' +
        '(default file://./exports). Prints the JSON summary line; exit codes as for export, except\n' +
        'as a Cloud Run job task (CLOUD_RUN_JOB set): 0 for a request rejected or cancelled for good,\n' +
        'which no retry can change (the summary line says its status; SIGTERM still exits 3).',
    )
    .option('--request <file>', 'request document, or - for stdin (default: EXPORT_REQUEST)')
    .option('--no-progress', 'no progress bar (terminal) or progress lines (otherwise) on stderr')
    .action((flags: { request?: string; progress: boolean }) => {
      let log = logger;
      return run(async () => {
        const { readRunRequest, runRequest } = await requests();
        const data = await readRunRequest(flags.request);
        const requestId = requestIdOf(data);
        if (requestId !== undefined) log = requestLogger(logger, requestId);
        return await withCancellation(log, (signal) => runRequest(data, log, signal, progress(flags.progress)));
      }, () => log);
    });
  program
    .command('worker')
    .summary('run export requests from a Pub/Sub subscription (streaming pull)')
    .description(
      'Pulls export requests from a subscription and runs each through the request lifecycle;\n' +
        'the ack deadline is extended while an export runs (up to an hour). SIGTERM stops pulling,\n' +
        'aborts running exports, hands their requests back and nacks them.\n' +
        'Database connections: each running export holds one on DATABASE_URL (its snapshot) and\n' +
        'renews its lease with one on STATE_DATABASE_URL, so each pool holds at most --concurrency + 2\n' +
        '(2 x --concurrency + 2 when STATE_DATABASE_URL is unset or DATABASE_URL: one pool for both).',
    )
    .requiredOption('--subscription <name>', 'subscription of the requests topic')
    .addOption(
      new Option('--concurrency <n>', 'requests run at once by this worker (sizes its database pools, see above)')
        .argParser(positiveInteger('--concurrency'))
        .default(1),
    )
    .option('--no-progress', 'no progress lines on stderr')
    .action((flags: { subscription: string; concurrency: number; progress: boolean }) =>
      // JSON lines even on a terminal: several requests may run at once.
      run(() => withCancellation(logger, (signal) => requests().then(({ runWorker }) => runWorker(flags, logger, signal, progress(flags.progress, false))))),
    );
  program
    .command('status')
    .summary("print a request's state as one JSON line")
    .argument('<requestId>')
    .action((requestId: string) => run(() => requests().then(({ printStatus }) => printStatus(requestId))));
  program
    .command('list')
    .summary("list a merchant's recent requests, one JSON line each, newest first")
    .requiredOption('--merchant <id>', 'merchant')
    .addOption(new Option('--limit <n>', 'at most this many').argParser(positiveInteger('--limit')).default(50))
    .action((flags: { merchant: string; limit: number }) => run(() => requests().then(({ printList }) => printList(flags.merchant, flags.limit))));
  program
    .command('cancel')
    .summary('cancel a queued or running request (a running export stops within 2 seconds)')
    .argument('<requestId>')
    .action((requestId: string) => run(() => requests().then(({ cancel }) => cancel(requestId, logger))));
  return program;
}

/** Parses argv, runs the command, and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const line = stderrStatusLine();
  // A second Ctrl-C exits at once: the shell's prompt must not land on a half-drawn bar.
  if (line !== undefined) process.once('exit', () => line.clear());
  let logger: Logger;
  try {
    logger = createLogger(undefined, line);
  } catch (error) {
    // No logger without a level: the person running it is told on stderr, as for a bad flag.
    if (!(error instanceof InvalidRequestError)) throw error;
    printProblem(`invalid request: ${error.message}`);
    return ExitCode.InvalidRequest;
  }
  logger.trace({ heap: heapReport() }, 'V8 heap settings');
  // Last resort for an error no listener heard (an `error` event of a connection closing at
  // shutdown, a rejection nothing awaited): one log line with the error as the logger serializes
  // it and the reason on stderr, then exit 1 as Node would, instead of Node's dump of the whole
  // error object (a pg error carries its client). The `exit` hooks still stop an embedded server.
  process.on('uncaughtException', (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    logger.fatal({ err: error }, `uncaught error: ${message}`);
    printProblem(`failed: uncaught error: ${message}`);
    process.exit(ExitCode.Failed);
  });
  let exitCode: number = ExitCode.Ok;
  const run: CommandRunner = async (work, log = () => logger) => {
    try {
      const code = await work();
      if (typeof code === 'number') exitCode = code;
    } catch (error) {
      if (error instanceof InvalidRequestError) {
        log().error({ field: error.field }, error.message);
        printProblem(`invalid request: ${error.message}`);
        exitCode = ExitCode.InvalidRequest;
      } else if (isAbortError(error)) {
        log().warn('cancelled; nothing was left behind');
        exitCode = ExitCode.Cancelled;
      } else {
        log().error({ err: error }, (error as Error).message ?? String(error));
        printProblem(`failed: ${(error as Error).message ?? String(error)}`);
        exitCode = ExitCode.Failed;
      }
    }
  };
  const program = buildProgram(logger, run, line);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; help shown because a subcommand is missing is a usage error.
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.InvalidRequest;
    }
    if (error instanceof InvalidRequestError) {
      printProblem(`invalid request: ${error.message}`);
      return ExitCode.InvalidRequest;
    }
    throw error;
  }
  return exitCode;
}
