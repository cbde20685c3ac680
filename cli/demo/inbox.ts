import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { SMTPServerOptions } from 'smtp-server';
import { importDevDependency } from './dev-dependencies.js';
import { readEmailText, type EmailText } from './email-text.js';

/** One message the inbox accepted. */
export interface InboxMessage {
  /** Absolute path of the `.eml` file: the message byte for byte as received. */
  readonly file: string;
  /** Envelope recipients (RCPT TO). */
  readonly recipients: readonly string[];
  readonly email: EmailText;
}

/** A local SMTP server that saves what it receives as `.eml` files. */
export interface LocalInbox {
  /** `smtp://127.0.0.1:PORT`: the `SMTP_URL` that sends to it. */
  readonly url: string;
  readonly directory: string;
  /** The messages accepted so far, in order. */
  readonly messages: readonly InboxMessage[];
  /** Stops listening; connections still open are closed within a tenth of a second. */
  close(): Promise<void>;
}

/** The largest message accepted: a download e-mail is a few kilobytes, and each is held in memory once. */
export const MAX_MESSAGE_BYTES = 1_000_000;
/** The most messages one inbox accepts: the demo sends a handful; this bounds a runaway sender. */
export const MAX_MESSAGES = 200;

function smtpError(responseCode: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode });
}

/** A file name from an address: only characters every file system takes, so a recipient cannot name a path. */
function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9@._+-]/g, '_').slice(0, 100);
}

/**
 * Starts an SMTP server on 127.0.0.1 (a free port) that stands in for the mail relay: every message
 * is accepted (no authentication) and written to `directory` as
 * `NN_<recipient>_<message id prefix>.eml` before the server answers 250, so a sender that got its
 * 250 finds the file there. STARTTLS is not offered: the connection never leaves the machine, and
 * smtp-server's bundled certificate would not be trusted anyway. smtp-server is a development
 * dependency, loaded here only (a `MissingDevDependencyError` when it is not installed).
 */
export async function startLocalInbox(directory: string, logger: Logger): Promise<LocalInbox> {
  const { SMTPServer } = await importDevDependency('smtp-server', () => import('smtp-server'));
  await mkdir(directory, { recursive: true });
  const messages: InboxMessage[] = [];
  const options: SMTPServerOptions = {
    banner: 'audit-export demo inbox',
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    size: MAX_MESSAGE_BYTES,
    maxClients: 8,
    closeTimeout: 100,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        // Past the limit the rest is drained, not kept; the server refuses the message at the end.
        if (bytes <= MAX_MESSAGE_BYTES) chunks.push(chunk);
      });
      stream.once('end', () => {
        if (stream.sizeExceeded || bytes > MAX_MESSAGE_BYTES) {
          callback(smtpError(552, `message larger than ${MAX_MESSAGE_BYTES} bytes`));
          return;
        }
        if (messages.length >= MAX_MESSAGES) {
          callback(smtpError(452, `inbox full: at most ${MAX_MESSAGES} messages`));
          return;
        }
        const raw = Buffer.concat(chunks);
        const email = readEmailText(raw);
        const recipients = session.envelope.rcptTo.map((address) => address.address);
        const number = String(messages.length + 1).padStart(2, '0');
        // The Message-ID is per request and recipient: a rerun's files do not overwrite this run's.
        const token = email.messageId.replace(/[^A-Za-z0-9]/g, '').slice(0, 8) || String(Date.now());
        const file = join(directory, `${number}_${safeName(recipients[0] ?? 'unknown')}_${token}.eml`);
        // Taken before the write, so two messages at once never get the same number.
        const message: InboxMessage = { file, recipients, email };
        messages.push(message);
        writeFile(file, raw).then(
          () => callback(null, `saved as ${file}`),
          (error: unknown) => {
            messages.splice(messages.indexOf(message), 1);
            callback(smtpError(451, `could not save the message: ${(error as Error).message}`));
          },
        );
      });
    },
  };
  const server = new SMTPServer(options);
  // Without a listener a failed client connection would be thrown as an uncaught error.
  server.on('error', (error: Error) => logger.warn({ err: error }, 'demo inbox: SMTP connection error'));
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const { port } = server.server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `smtp://127.0.0.1:${port}`,
    directory,
    messages,
    close: () => (closing ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}
