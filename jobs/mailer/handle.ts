import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Logger } from 'pino';
import { parseAnnouncement, type ReadyAnnouncement } from '../announcement.js';
import { InvalidRequestError } from '../errors.js';
import { markExpired } from '../lifecycle/state.js';
import {
  claimDelivery,
  DEFAULT_LEASE_MS,
  isFinal,
  markRejected,
  markSent,
  readDeliveries,
  releaseClaim,
  type DeliveryClaim,
} from './deliveries.js';
import { requestLogger, secondsSince } from '../../config/logs.js';
import { hashEmail, maskEmail, redactEmails } from '../../config/privacy.js';
import { LinkUnavailableError } from './link-window.js';
import { classifySmtpError, type MailTransport, type SmtpAcceptance } from './smtp.js';
import { renderDownloadEmail, type DownloadLink, type RenderedEmail } from './templates.js';

/** What {@link handleAnnouncement} needs. */
export interface MailerDeps {
  /** The state database (`STATE_DATABASE_URL`, default `DATABASE_URL`), migrated with `migrateState`. */
  readonly pool: pg.Pool;
  readonly transport: MailTransport;
  /**
   * Signs the download link of the announced object. Called at most once per announcement, and
   * only when some recipient still needs the e-mail. Throw a {@link LinkUnavailableError} when the
   * object is gone or too close to its deletion (the announcement is acknowledged and the request
   * marked `expired`), an {@link InvalidRequestError} when the link can never be made for another
   * reason (the announcement is acknowledged); any other error is retried.
   */
  readonly signLink: (announcement: ReadyAnnouncement) => Promise<DownloadLink>;
  readonly logger: Logger;
  /** `MAIL_BRAND` (`B2Chat`). */
  readonly brand: string;
  /** `MAIL_SUBJECT`; default `<brand> Exporting messages`, translated. */
  readonly subject?: string;
  /** Zone the link's expiry is shown in; default the export's zone. */
  readonly timeZone?: string;
  /** How long a claim protects a recipient being sent to (default 10 minutes); see `claimDelivery`. */
  readonly leaseMs?: number;
  /** Recipients in flight at once (default 5); the transport's pool and rate limit pace them further. */
  readonly concurrency?: number;
}

/** The outcome of one delivery of a ready announcement. */
export interface HandleResult {
  /** `ack`: done (or can never be done); `nack`: have Pub/Sub deliver it again. */
  readonly outcome: 'ack' | 'nack';
  /** E-mails the SMTP server accepted during this call. */
  readonly sent: number;
  /** Recipients not sent to by this call: already sent or rejected, or being sent by another mailer. */
  readonly skipped: number;
  /** Recipients the SMTP server refused for good during this call; never retried. */
  readonly rejected: number;
  /** Recipients left for a redelivery (a transient failure, or not tried after one). */
  readonly pending: number;
  /** Why the announcement was not simply done; never contains an e-mail address in clear. */
  readonly reason?: string;
}

/**
 * The Message-ID of the download e-mail of one request to one recipient: the same for every
 * attempt, so that a duplicate from the one unavoidable window (see `claimDelivery`) is recognisable,
 * and collapsed by mailbox providers that do so.
 */
export function downloadMessageId(requestId: string, recipient: string, senderAddress: string): string {
  const digest = createHash('sha256').update(`${requestId}\n${recipient.toLowerCase()}`).digest('hex').slice(0, 32);
  return `<${digest}.audit-export@${senderAddress.slice(senderAddress.lastIndexOf('@') + 1)}>`;
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const { response } = error as { response?: unknown };
    return redactEmails(typeof response === 'string' && !error.message.includes(response) ? `${error.message}: ${response}` : error.message);
  }
  return redactEmails(String(error));
}

/**
 * What the state database keeps of a failed send: the server's reply as it came, addresses and all
 * (the table holds the recipient anyway), else the error's message.
 */
function smtpOutcome(error: unknown): string {
  if (error instanceof Error) {
    const { response } = error as { response?: unknown };
    return typeof response === 'string' && response !== '' ? response : error.message;
  }
  return String(error);
}

/** Nodemailer's details of a failed send, without addresses. */
function smtpErrorFields(error: unknown): Record<string, unknown> {
  if (typeof error !== 'object' || error === null) return { error: redactEmails(String(error)) };
  const { code, responseCode, command } = error as { code?: unknown; responseCode?: unknown; command?: unknown };
  return { code, responseCode, command, error: describeError(error) };
}

/** A failure that says the SMTP server cannot be reached at all, rather than that it refused this message. */
function isConnectionFailure(error: unknown): boolean {
  return typeof error === 'object' && error !== null && typeof (error as { responseCode?: unknown }).responseCode !== 'number';
}

// A 250 not recorded is a duplicate waiting for the lease to run out: worth a few quick retries.
async function recordSent(pool: pg.Pool, claim: DeliveryClaim, acceptance: SmtpAcceptance) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await markSent(pool, claim, acceptance);
    } catch (error) {
      if (attempt >= 4) throw error;
      await sleep(100 * 4 ** (attempt - 1));
    }
  }
}

/** Runs `work` on every item, at most `limit` at a time. */
async function forEachBounded<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`Expected \`${name}\` to be a whole number from 1 up, got ${String(value)}`);
  return value;
}

/**
 * Handles one delivery of a ready announcement (a Pub/Sub message's data): e-mails each recipient
 * the download link, exactly once per (request, recipient) across redeliveries, restarts and
 * concurrent mailers.
 *
 * - A malformed announcement (not JSON, a missing field, a bad address) is logged and acknowledged
 *   with its reason: it can never succeed, and a nack would loop forever.
 * - Recipients already `sent` or `rejected` are skipped. For the others the link is signed once,
 *   the e-mail rendered once, and each recipient is claimed, sent one message (HTML and text) of
 *   its own, and recorded right after the server's reply: `sent` on 250, `rejected` on a permanent
 *   refusal (see `classifySmtpError`; never retried, the announcement is still acknowledged).
 * - When `signLink` finds the file gone, or less than an hour from its deletion by the bucket's
 *   lifecycle (a late announcement: a backlog, a dead-letter replay), nothing is sent: the request
 *   is marked `expired` in `audit_export_requests` with the reason (see `markExpired`), a warning
 *   says why, and the announcement is acknowledged (a nack if that record cannot be written).
 * - A transient failure releases that recipient's claim and the call goes on with the others, so a
 *   deferral for one address does not hold back the rest; the result is then `nack`, and the
 *   redelivery sends only to recipients not yet `sent` or `rejected`. When the server cannot be
 *   reached at all (no SMTP reply), recipients not yet started are left alone rather than each
 *   waiting out the same failure.
 * - A recipient claimed by another live mailer is skipped, and the result is `nack` unless that
 *   mailer has finished it by the end of this call: it may still fail, and its own nack may not
 *   count if both hold the same Pub/Sub message. A claim older than `leaseMs` is taken over (and
 *   logged): its mailer died, perhaps after the server's 250, so the recipient may get a second
 *   e-mail, with the same Message-ID (see {@link downloadMessageId}).
 *
 * Never throws for a failure of the SMTP server, the state database or `signLink`; those give
 * `nack`. Logs show addresses masked (`a***@example.com`) with a hash, never in clear.
 *
 * @throws TypeError for a `leaseMs` or `concurrency` that is not a whole number from 1 up.
 */
export async function handleAnnouncement(data: Buffer, deps: MailerDeps): Promise<HandleResult> {
  const leaseMs = positive('leaseMs', deps.leaseMs, DEFAULT_LEASE_MS);
  const concurrency = positive('concurrency', deps.concurrency, 5);
  const started = performance.now();
  let announcement: ReadyAnnouncement;
  try {
    announcement = parseAnnouncement(JSON.parse(data.toString('utf8')));
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof InvalidRequestError)) throw error;
    const reason = `malformed announcement: ${error instanceof SyntaxError ? 'not JSON' : describeError(error)}`;
    deps.logger.warn({ reason, bytes: data.length }, 'announcement acknowledged without sending: it can never be handled');
    return { outcome: 'ack', sent: 0, skipped: 0, rejected: 0, pending: 0, reason };
  }

  const { recipients } = announcement;
  // Exactly once per file and recipient: a report with one file per bot sends one e-mail per bot.
  const requestId = announcement.report === undefined ? announcement.requestId : `${announcement.requestId}#bot-${announcement.report.botId}`;
  const log = requestLogger(deps.logger, announcement.requestId, {
    kind: announcement.kind,
    ...(announcement.report === undefined ? {} : { botId: announcement.report.botId }),
  });
  const counts = { sent: 0, skipped: 0, rejected: 0, pending: 0 };
  const busy: string[] = [];
  const result = (outcome: 'ack' | 'nack', reason?: string): HandleResult => {
    const summary = { outcome, sent: counts.sent, skipped: counts.skipped, rejected: counts.rejected, pending: counts.pending };
    const timing = { recipients: recipients.length, seconds: secondsSince(started) };
    if (outcome === 'nack') log.warn({ ...summary, ...timing, reason }, 'announcement to be delivered again');
    else log.info({ ...summary, ...timing, ...(reason === undefined ? {} : { reason }) }, 'announcement handled');
    return reason === undefined ? summary : { ...summary, reason };
  };

  let todo: string[];
  try {
    const states = await readDeliveries(deps.pool, requestId, recipients);
    todo = recipients.filter((recipient) => !isFinal(states.get(recipient)));
  } catch (error) {
    counts.pending = recipients.length;
    return result('nack', `state database: ${describeError(error)}`);
  }
  counts.skipped = recipients.length - todo.length;
  if (todo.length === 0) return result('ack');

  let email: RenderedEmail;
  try {
    const link = await deps.signLink(announcement);
    email = renderDownloadEmail(announcement, link, {
      brand: deps.brand,
      ...(deps.subject === undefined ? {} : { subject: deps.subject }),
      ...(deps.timeZone === undefined ? {} : { timeZone: deps.timeZone }),
    });
  } catch (error) {
    if (error instanceof LinkUnavailableError) {
      // A late announcement (a backlog, a dead-letter replay): a link to this file would 404.
      let requestStatus: string | undefined;
      try {
        requestStatus = await markExpired(deps.pool, announcement.requestId, error.message);
      } catch (stateError) {
        counts.pending = todo.length;
        return result('nack', `state database: ${describeError(stateError)}`);
      }
      log.warn(
        { reason: error.message, uri: announcement.uri, recipients: todo.length, requestStatus: requestStatus ?? null },
        'announcement acknowledged without sending: the file is gone or about to be deleted',
      );
      return result('ack', `not mailed: ${error.message}`);
    }
    if (error instanceof InvalidRequestError) {
      counts.pending = 0;
      return result('ack', `no link can be made: ${describeError(error)}`);
    }
    counts.pending = todo.length;
    return result('nack', `link or e-mail: ${describeError(error)}`);
  }

  let unreachable = false;
  let firstFailure: string | undefined;
  const fail = (reason: string): void => {
    counts.pending += 1;
    firstFailure ??= reason;
  };

  await forEachBounded(todo, concurrency, async (recipient) => {
    const who = { recipient: maskEmail(recipient), recipientHash: hashEmail(recipient) };
    if (unreachable) {
      fail('SMTP server unreachable');
      return;
    }
    let claim: DeliveryClaim;
    try {
      const claimed = await claimDelivery(deps.pool, requestId, recipient, { leaseMs });
      if (!claimed.claimed) {
        counts.skipped += 1;
        if (claimed.status === 'sending') busy.push(recipient);
        return;
      }
      claim = claimed.claim;
    } catch (error) {
      // Without the state database nothing can be sent safely; the rest would fail the same way.
      unreachable = true;
      fail(`state database: ${describeError(error)}`);
      return;
    }
    if (claim.tookOver) {
      log.warn({ ...who, attempt: claim.attempt }, 'took over an expired claim: its mailer may have sent this e-mail already');
    }

    let acceptance: SmtpAcceptance;
    const sendStarted = performance.now();
    try {
      acceptance = await deps.transport.send(
        {
          to: recipient,
          subject: email.subject,
          text: email.text,
          html: email.html,
          messageId: downloadMessageId(requestId, recipient, deps.transport.from.address),
          language: announcement.locale,
        },
        // Give up well before the lease ends, so no other mailer takes the claim over while this one still sends.
        AbortSignal.timeout(Math.max(1, Math.floor(leaseMs / 2))),
      );
    } catch (error) {
      const fields = { ...who, attempt: claim.attempt, ...smtpErrorFields(error) };
      try {
        if (classifySmtpError(error) === 'permanent') {
          await markRejected(deps.pool, claim, smtpOutcome(error));
          counts.rejected += 1;
          log.warn(fields, 'recipient rejected for good: not retried');
          return;
        }
        await releaseClaim(deps.pool, claim, smtpOutcome(error));
      } catch (stateError) {
        // The claim stays `sending` and expires with its lease; the recipient is retried after that.
        log.error({ ...who, error: describeError(stateError) }, 'could not record a failed send');
      }
      if (isConnectionFailure(error)) unreachable = true;
      fail(describeError(error));
      log.warn(fields, 'send failed: left for a redelivery');
      return;
    }

    try {
      const recorded = await recordSent(deps.pool, claim, acceptance);
      if (recorded === 'recorded-without-claim') {
        log.error({ ...who, attempt: claim.attempt }, 'claim was taken over while sending: this recipient may get the e-mail twice');
      }
    } catch (error) {
      log.error({ ...who, error: describeError(error) }, 'sent but not recorded: a redelivery after the lease sends it again');
    }
    counts.sent += 1;
    log.info(
      { ...who, attempt: claim.attempt, messageId: acceptance.messageId, response: redactEmails(acceptance.response), seconds: secondsSince(sendStarted) },
      'e-mail sent',
    );
  });

  if (counts.pending > 0) return result('nack', `${counts.pending} recipient(s) left for a redelivery: ${firstFailure ?? 'unknown'}`);
  if (busy.length > 0) {
    // The other mailer may have finished meanwhile; if so there is nothing left to redeliver for.
    let stillBusy = busy.length;
    try {
      const states = await readDeliveries(deps.pool, requestId, busy);
      stillBusy = busy.filter((recipient) => !isFinal(states.get(recipient))).length;
    } catch (error) {
      log.warn({ error: describeError(error) }, 'could not check the recipients another mailer was sending to');
    }
    if (stillBusy > 0) return result('nack', `${stillBusy} recipient(s) being sent by another mailer`);
  }
  return result('ack', counts.rejected > 0 ? `${counts.rejected} recipient(s) rejected by the SMTP server` : undefined);
}
