import nodemailer, { type NodemailerError } from 'nodemailer';
import { InvalidRequestError } from '../errors.js';
import { parseEmailAddress } from '../announcement.js';

/** The sender of the download e-mails, from `MAIL_FROM`. */
export interface MailSender {
  /** Display name (`B2Chat` in `B2Chat <no-reply@b2chat.io>`), if any. */
  readonly name?: string;
  /** The address, also the envelope sender; its domain names the Message-IDs. */
  readonly address: string;
}

/** One e-mail to one recipient: the mailer never puts two recipients on a message. */
export interface OutgoingEmail {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  /** `<...@...>`: the same for every send to one recipient of one request, see `handle.ts`. */
  readonly messageId: string;
  /** BCP 47 tag of the text, sent as `Content-Language`. */
  readonly language?: string;
}

/** What the SMTP server answered when it took the message. */
export interface SmtpAcceptance {
  /** The final reply to the message (`250 ...`). */
  readonly response: string;
  /** The Message-ID header sent. */
  readonly messageId: string;
}

/** A pooled, rate-limited SMTP connection that sends {@link OutgoingEmail}s. */
export interface MailTransport {
  readonly from: MailSender;
  /**
   * Sends one e-mail and resolves once the server accepted it (250). Rejects with nodemailer's
   * error (see {@link classifySmtpError}); an aborted `signal` rejects too, but proves nothing about
   * whether the server already took the message.
   */
  send(email: OutgoingEmail, signal?: AbortSignal): Promise<SmtpAcceptance>;
  /** Closes the pool's connections; messages still queued fail. */
  close(): void;
}

/** Options of {@link createMailTransport}. */
export interface MailTransportOptions {
  /** `SMTP_URL`: `smtp://[user:pass@]host[:port]` (STARTTLS when offered) or `smtps://...` (TLS). */
  readonly url: string;
  /** `MAIL_FROM`: `address@domain` or `Name <address@domain>`. */
  readonly from: string;
  /** Parallel SMTP connections (default 2). */
  readonly maxConnections?: number;
  /** At most this many messages per second over all connections (default: no limit). */
  readonly rateLimit?: number;
  /** Wait for a TCP connection (default 30 s). */
  readonly connectionTimeoutMs?: number;
  /** Wait for the server's greeting (default 30 s). */
  readonly greetingTimeoutMs?: number;
  /** Wait for any reply on an open connection (default 60 s), so no send outlives its claim's lease. */
  readonly socketTimeoutMs?: number;
}

function redactUrl(value: string): string {
  return value.replace(/\/\/[^/@]*@/, '//***@');
}

function positiveInteger(name: string, value: number | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`Expected \`${name}\` to be a whole number from 1 up, got ${String(value)}`);
  }
  return value;
}

/**
 * Validates an SMTP URL (`SMTP_URL`): `smtp:` or `smtps:`, with a host. The password, if any, is
 * never repeated in the error.
 * @throws TypeError naming the value and the rule.
 */
export function parseSmtpUrl(value: unknown): URL {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(`Expected \`SMTP_URL\` to be an smtp:// or smtps:// URL, got ${JSON.stringify(value)}`);
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new TypeError(`Expected \`SMTP_URL\` to be an smtp:// or smtps:// URL, got ${JSON.stringify(redactUrl(value))}`);
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    throw new TypeError(`Expected \`SMTP_URL\` to start with smtp:// or smtps://, got ${JSON.stringify(redactUrl(value))}`);
  }
  if (url.hostname === '') {
    throw new TypeError(`Expected \`SMTP_URL\` to name a host, got ${JSON.stringify(redactUrl(value))}`);
  }
  return url;
}

/**
 * Validates a sender (`MAIL_FROM`): `address@domain` or `Display Name <address@domain>` (the name
 * may be double-quoted).
 * @throws TypeError naming the value and the rule.
 */
export function parseMailFrom(value: unknown): MailSender {
  const rule = 'an e-mail address or "Name <address>"';
  if (typeof value !== 'string') throw new TypeError(`Expected \`MAIL_FROM\` to be ${rule}, got ${JSON.stringify(value)}`);
  const match = /^\s*(?:"?([^"<>]*?)"?\s*<([^<>]+)>|([^<>]+?))\s*$/.exec(value);
  const address = match?.[2] ?? match?.[3];
  const name = match?.[1]?.trim();
  try {
    return { ...(name ? { name } : {}), address: parseEmailAddress('MAIL_FROM', address) };
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    throw new TypeError(`Expected \`MAIL_FROM\` to be ${rule}, got ${JSON.stringify(value)}`);
  }
}

/**
 * Creates the mail step's SMTP transport: nodemailer's pooled SMTP transport, at most
 * `maxConnections` connections and `rateLimit` messages per second, with timeouts short enough
 * that a stuck server fails a send well within a delivery claim's lease.
 *
 * Nodemailer re-queues a message whose pooled connection closed mid-send (up to 5 times): that
 * resend is no worse than ours, since either way the server may or may not have taken the first
 * attempt.
 *
 * @throws TypeError for an invalid `url`, `from`, `maxConnections`, `rateLimit` or timeout.
 */
export function createMailTransport(options: MailTransportOptions): MailTransport {
  const url = parseSmtpUrl(options.url);
  const from = parseMailFrom(options.from);
  const maxConnections = positiveInteger('maxConnections', options.maxConnections, 2);
  const rateLimit = positiveInteger('rateLimit', options.rateLimit, undefined);
  const transporter = nodemailer.createTransport({
    pool: true,
    url: url.toString(),
    maxConnections,
    ...(rateLimit === undefined ? {} : { rateLimit, rateDelta: 1000 }),
    connectionTimeout: positiveInteger('connectionTimeoutMs', options.connectionTimeoutMs, 30_000),
    greetingTimeout: positiveInteger('greetingTimeoutMs', options.greetingTimeoutMs, 30_000),
    socketTimeout: positiveInteger('socketTimeoutMs', options.socketTimeoutMs, 60_000),
    // Nodemailer's own logging would print recipients' addresses.
    logger: false,
    debug: false,
  });
  return {
    from,
    async send(email, signal) {
      const info = await transporter.sendMail({
        from: from.name === undefined ? from.address : { name: from.name, address: from.address },
        to: email.to,
        subject: email.subject,
        text: email.text,
        html: email.html,
        messageId: email.messageId,
        headers: {
          // RFC 3834: out-of-office and other auto-replies should not answer a notification.
          'Auto-Submitted': 'auto-generated',
          ...(email.language === undefined ? {} : { 'Content-Language': email.language }),
        },
        ...(signal === undefined ? {} : { signal }),
      });
      // With one recipient a refused RCPT fails the whole send; this guards the contract anyway.
      if (info.rejected.length > 0 || info.accepted.length === 0) {
        const error: NodemailerError = new Error(`Recipient not accepted: ${info.response}`);
        error.code = 'EENVELOPE';
        error.command = 'RCPT TO';
        error.response = info.rejectedErrors?.[0]?.response ?? info.response;
        error.responseCode = info.rejectedErrors?.[0]?.responseCode;
        throw error;
      }
      return { response: info.response, messageId: info.messageId };
    },
    close() {
      transporter.close();
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/**
 * Decides whether a failed send may succeed later.
 *
 * - `permanent`: the server refused this recipient (a 5xx reply to RCPT TO) or this message (a 5xx
 *   reply after DATA), or nodemailer refused the message itself (`EMESSAGE` without a reply, such as
 *   a size over the server's limit). Sending the same again gets the same answer; the recipient is
 *   recorded `rejected` and never retried.
 * - `transient`: everything else: no connection (refused, DNS, TLS, timeouts), 4xx replies
 *   (greylisting, a full mailbox, 421), 503, an aborted send, and 5xx replies that are not about the
 *   recipient (to EHLO, AUTH or MAIL FROM: a misconfigured mailer must not burn its recipients).
 *
 * Reads nodemailer's `responseCode`, `command` and `code` (`ECONNECTION`, `ETIMEDOUT`, `EENVELOPE`,
 * `EMESSAGE`...); anything that is not an error object is transient.
 */
export function classifySmtpError(error: unknown): 'transient' | 'permanent' {
  if (!isRecord(error)) return 'transient';
  const { responseCode, command, code } = error;
  if (typeof responseCode === 'number') {
    const permanentReply = responseCode >= 500 && responseCode < 600 && responseCode !== 503;
    const aboutThisMessage = command === 'RCPT TO' || command === 'DATA' || code === 'EMESSAGE';
    return permanentReply && aboutThisMessage ? 'permanent' : 'transient';
  }
  return code === 'EMESSAGE' ? 'permanent' : 'transient';
}
