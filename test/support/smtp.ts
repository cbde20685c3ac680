import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

/** One message an in-process SMTP server accepted. */
export interface ReceivedMessage {
  /** Envelope sender and recipients, as the client gave them. */
  readonly from: string;
  readonly to: readonly string[];
  readonly raw: Buffer;
  readonly parsed: ParsedMail;
  /** `performance.now()` when the server answered 250. */
  readonly acceptedAt: number;
}

/** An SMTP error as smtp-server sends it: the code becomes the reply. */
export function smtpReply(responseCode: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode });
}

/** Behaviour of a {@link TestSmtpServer}. */
export interface TestSmtpOptions {
  /** Port to listen on (default any free one). */
  readonly port?: number;
  /** Answer MAIL FROM with this error, else accept. */
  readonly mailFrom?: (address: string) => Error | undefined;
  /** Answer RCPT TO for this address with this error (see {@link smtpReply}), else accept. */
  readonly rcptTo?: (address: string) => Error | undefined;
  /** Answer the end of DATA with this error, else accept. */
  readonly data?: (recipients: readonly string[]) => Error | undefined;
  /** Wait this long before answering the end of DATA. */
  readonly dataDelayMs?: number;
}

/** An in-process SMTP server on 127.0.0.1 that keeps what it was sent. */
export interface TestSmtpServer {
  readonly port: number;
  readonly url: string;
  readonly messages: ReceivedMessage[];
  /** Every RCPT TO address the server was given, accepted or not, in order. */
  readonly rcptTo: string[];
  /** Resolves once `count` messages arrived; rejects after `timeoutMs`. */
  waitForMessages(count: number, timeoutMs?: number): Promise<void>;
  /** Stops listening and drops open connections at once. */
  close(): Promise<void>;
}

/**
 * Starts an SMTP server for tests: no STARTTLS (the bundled certificate has expired), no
 * authentication required, messages parsed with mailparser.
 */
export async function startSmtpServer(options: TestSmtpOptions = {}): Promise<TestSmtpServer> {
  const messages: ReceivedMessage[] = [];
  const rcptTo: string[] = [];
  const serverOptions: SMTPServerOptions = {
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    closeTimeout: 50,
    onMailFrom(address, _session, callback) {
      callback(options.mailFrom?.(address.address) ?? null);
    },
    onRcptTo(address, _session, callback) {
      rcptTo.push(address.address);
      callback(options.rcptTo?.(address.address) ?? null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const recipients = session.envelope.rcptTo.map((address) => address.address);
        const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        void (async () => {
          if (options.dataDelayMs !== undefined) await sleep(options.dataDelayMs);
          const refusal = options.data?.(recipients);
          if (refusal !== undefined) {
            callback(refusal);
            return;
          }
          const raw = Buffer.concat(chunks);
          const parsed = await simpleParser(raw);
          messages.push({ from, to: recipients, raw, parsed, acceptedAt: performance.now() });
          callback(null, `Ok: queued as test-${messages.length}`);
        })();
      });
    },
  };
  const server = new SMTPServer(serverOptions);
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server.server, 'listening');
  const port = (server.server.address() as net.AddressInfo).port;
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    rcptTo,
    async waitForMessages(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} messages, got ${messages.length}`);
        await sleep(10);
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A 127.0.0.1 port nothing listens on (it was free a moment ago): connections to it are refused. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
