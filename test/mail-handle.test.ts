import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../db/connection.js';
import { migrateState } from '../db/migrate.js';
import type { ReadyAnnouncement } from '../jobs/announcement.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { claimDelivery } from '../jobs/mailer/deliveries.js';
import { handleAnnouncement, type MailerDeps } from '../jobs/mailer/handle.js';
import { createMailTransport, type MailTransport, type MailTransportOptions } from '../jobs/mailer/smtp.js';
import type { DownloadLink } from '../jobs/mailer/templates.js';
import { announcementData, fakeSignLink } from './support/announcement.js';
import { useTestDatabase } from './support/database.js';
import { captureLogs, type CapturedLogs } from './support/logs.js';
import { freePort, smtpReply, startSmtpServer, type TestSmtpOptions, type TestSmtpServer } from './support/smtp.js';

const db = useTestDatabase();

beforeAll(async () => {
  await migrateState(db.pool);
});

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

const RECIPIENTS = ['ana@example.com', 'bruno@example.org', 'carla@example.net'];
let requestCounter = 0;

/** A request id of its own for every test, since the tests of this file share one database. */
function newRequestId(): string {
  requestCounter += 1;
  return `req-${process.pid}-${requestCounter}`;
}

async function smtpServer(options: TestSmtpOptions = {}): Promise<TestSmtpServer> {
  const server = await startSmtpServer(options);
  cleanup.push(() => server.close());
  return server;
}

function transport(url: string, options: Partial<MailTransportOptions> = {}): MailTransport {
  const created = createMailTransport({ url, from: 'B2Chat <no-reply@b2chat.example>', ...options });
  cleanup.push(() => created.close());
  return created;
}

interface Mailer {
  readonly deps: MailerDeps;
  readonly logs: CapturedLogs;
  /** How many times the mailer signed a link. */
  signed: number;
}

function mailer(mailTransport: MailTransport, overrides: Partial<MailerDeps> = {}): Mailer {
  const logs = captureLogs();
  const result: Mailer = {
    logs,
    signed: 0,
    deps: {
      pool: db.pool,
      transport: mailTransport,
      signLink: async (announcement: ReadyAnnouncement): Promise<DownloadLink> => {
        result.signed += 1;
        return fakeSignLink(announcement);
      },
      logger: logs.logger,
      brand: 'B2Chat',
      ...overrides,
    },
  };
  return result;
}

async function deliveries(requestId: string): Promise<Record<string, { status: string; attempts: number; smtp_response: string | null; message_id: string | null }>> {
  const { rows } = await db.pool.query<{ recipient: string; status: string; attempts: number; smtp_response: string | null; message_id: string | null }>(
    `SELECT recipient, status, attempts, smtp_response, message_id FROM audit_export_deliveries WHERE request_id = $1 ORDER BY recipient`,
    [requestId],
  );
  return Object.fromEntries(rows.map(({ recipient, ...rest }) => [recipient, rest]));
}

/** Recipients of the messages that arrived, sorted; each message must have had exactly one. */
function arrivedTo(server: TestSmtpServer): string[] {
  for (const message of server.messages) expect(message.to).toHaveLength(1);
  return server.messages.map((message) => message.to[0] ?? '').sort();
}

function expectNoAddressIn(logs: CapturedLogs, addresses: readonly string[] = RECIPIENTS): void {
  const text = logs.text();
  for (const address of addresses) expect(text).not.toContain(address);
}

describe('handleAnnouncement: delivery', () => {
  const WORDS = {
    en: { subject: 'B2Chat Exporting messages', expires: 'The link expires on November 28, 2026 at 2:05', size: 'File size: 1.2 MB', rows: 'Rows: 123,456', filters: 'Filters: Channels: WHATSAPP, <script>alert(1)</script>; Statuses: CLOSED' },
    es: { subject: 'B2Chat Exporting messages', expires: 'El enlace vence el 28 de noviembre de 2026 a las 14:05', size: 'Tamaño del archivo: 1,2 MB', rows: 'Filas: 123.456', filters: 'Filtros: Canales: WHATSAPP, <script>alert(1)</script>; Estados: CLOSED' },
    pt: { subject: 'B2Chat Exporting messages', expires: 'O link expira em 28 de novembro de 2026 às 14:05', size: 'Tamanho do arquivo: 1,2 MB', rows: 'Linhas: 123.456', filters: 'Filtros: Canais: WHATSAPP, <script>alert(1)</script>; Status: CLOSED' },
  } as const;

  it.each(['en', 'es', 'pt'] as const)('e-mails each of 3 recipients once, in %s, with the link and the export\'s details', async (locale) => {
    const server = await smtpServer();
    const m = mailer(transport(server.url));
    const requestId = newRequestId();
    const data = announcementData({
      requestId,
      locale,
      parameters: { from: '2026-09-01', to: '2026-10-31', timezone: 'America/Bogota', filters: { providers: ['WHATSAPP', '<script>alert(1)</script>'], statuses: ['CLOSED'] } },
    });

    const result = await handleAnnouncement(data, m.deps);

    expect(result).toEqual({ outcome: 'ack', sent: 3, skipped: 0, rejected: 0, pending: 0 });
    expect(arrivedTo(server)).toEqual([...RECIPIENTS].sort());
    const link = await fakeSignLink(JSON.parse(data.toString()) as ReadyAnnouncement);
    const words = WORDS[locale];
    for (const message of server.messages) {
      const { parsed } = message;
      expect(parsed.subject).toBe(words.subject);
      expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((a) => a.address) : []).toEqual(message.to);
      expect(parsed.from?.value).toEqual([{ address: 'no-reply@b2chat.example', name: 'B2Chat' }]);
      expect(parsed.headers.get('content-language')).toBe(locale);
      const text = parsed.text ?? '';
      for (const expected of [link.url, words.expires, '(America/Bogota, GMT-05:00)', words.size, words.rows, words.filters, requestId]) {
        expect(text).toContain(expected);
      }
      const html = typeof parsed.html === 'string' ? parsed.html : '';
      expect(html).not.toContain('<script');
      expect(html).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
      expect(html).toContain(`href="${link.url.replaceAll('&', '&#38;')}"`);
    }
    const rows = await deliveries(requestId);
    expect(Object.keys(rows).sort()).toEqual([...RECIPIENTS].sort());
    for (const message of server.messages) {
      const row = rows[message.to[0] ?? ''];
      expect(row).toMatchObject({ status: 'sent', attempts: 1, message_id: message.parsed.messageId });
      expect(row?.smtp_response).toMatch(/^250 Ok: queued as test-\d+$/);
    }
    expect(new Set(server.messages.map((message) => message.parsed.messageId)).size).toBe(3);
    expect(m.signed).toBe(1);
    expectNoAddressIn(m.logs);
    expect(m.logs.text()).toContain('a***@example.com');
  });

  it('sends nothing new when the same announcement comes again, also to a restarted mailer', async () => {
    const server = await smtpServer();
    const requestId = newRequestId();
    const data = announcementData({ requestId });
    const first = mailer(transport(server.url));
    expect(await handleAnnouncement(data, first.deps)).toMatchObject({ outcome: 'ack', sent: 3 });
    expect(await handleAnnouncement(data, first.deps)).toEqual({ outcome: 'ack', sent: 0, skipped: 3, rejected: 0, pending: 0 });
    first.deps.transport.close();

    // A restart: a new transport and a new state pool, the same state database.
    const pool = createPool(db.url, { max: 2 });
    cleanup.push(() => pool.end());
    const restarted = mailer(transport(server.url), { pool });
    expect(await handleAnnouncement(data, restarted.deps)).toEqual({ outcome: 'ack', sent: 0, skipped: 3, rejected: 0, pending: 0 });

    expect(arrivedTo(server)).toEqual([...RECIPIENTS].sort());
    expect(first.signed).toBe(1);
    expect(restarted.signed).toBe(0);
  });
});

describe('handleAnnouncement: SMTP failures', () => {
  it('nacks while the SMTP port refuses connections and records nothing as sent; the redelivery sends each e-mail once', async () => {
    const port = await freePort();
    const m = mailer(transport(`smtp://127.0.0.1:${port}`));
    const requestId = newRequestId();
    const data = announcementData({ requestId });

    const down = await handleAnnouncement(data, m.deps);
    expect(down).toMatchObject({ outcome: 'nack', sent: 0, rejected: 0, pending: 3 });
    expect(down.reason).toMatch(/^3 recipient\(s\) left for a redelivery: /);
    expect(Object.values(await deliveries(requestId)).map((row) => row.status)).not.toContain('sent');

    const server = await smtpServer({ port });
    const up = await handleAnnouncement(data, m.deps);
    expect(up).toEqual({ outcome: 'ack', sent: 3, skipped: 0, rejected: 0, pending: 0 });
    expect(await handleAnnouncement(data, m.deps)).toMatchObject({ outcome: 'ack', sent: 0, skipped: 3 });
    expect(arrivedTo(server)).toEqual([...RECIPIENTS].sort());
    expect(Object.values(await deliveries(requestId)).map((row) => row.status)).toEqual(['sent', 'sent', 'sent']);
    expectNoAddressIn(m.logs);
  });

  it('nacks after the SMTP server went away under a pooled connection; once it is back, the redelivery sends each e-mail once', async () => {
    const first = await startSmtpServer();
    const m = mailer(transport(first.url));
    expect(await handleAnnouncement(announcementData({ requestId: newRequestId() }), m.deps)).toMatchObject({ outcome: 'ack', sent: 3 });
    await first.close();

    const requestId = newRequestId();
    const data = announcementData({ requestId });
    expect(await handleAnnouncement(data, m.deps)).toMatchObject({ outcome: 'nack', sent: 0, pending: 3 });
    expect(Object.values(await deliveries(requestId)).map((row) => row.status)).not.toContain('sent');

    const second = await smtpServer({ port: first.port });
    expect(await handleAnnouncement(data, m.deps)).toMatchObject({ outcome: 'ack', sent: 3, skipped: 0 });
    expect(arrivedTo(second)).toEqual([...RECIPIENTS].sort());
  });

  it('records a 550 for one recipient as rejected, sends the others and acks; a redelivery does not retry it', async () => {
    const server = await smtpServer({ rcptTo: (address) => (address === 'bruno@example.org' ? smtpReply(550, '5.1.1 <bruno@example.org>: mailbox unavailable') : undefined) });
    const m = mailer(transport(server.url));
    const requestId = newRequestId();
    const data = announcementData({ requestId });

    const result = await handleAnnouncement(data, m.deps);
    expect(result).toEqual({ outcome: 'ack', sent: 2, skipped: 0, rejected: 1, pending: 0, reason: '1 recipient(s) rejected by the SMTP server' });
    const rows = await deliveries(requestId);
    expect(rows['bruno@example.org']?.status).toBe('rejected');
    expect(rows['bruno@example.org']?.smtp_response).toBe('550 5.1.1 <bruno@example.org>: mailbox unavailable');
    expect(rows['ana@example.com']?.status).toBe('sent');
    expect(rows['carla@example.net']?.status).toBe('sent');

    expect(await handleAnnouncement(data, m.deps)).toEqual({ outcome: 'ack', sent: 0, skipped: 3, rejected: 0, pending: 0 });
    expect(server.rcptTo.filter((address) => address === 'bruno@example.org')).toHaveLength(1);
    expect(arrivedTo(server)).toEqual(['ana@example.com', 'carla@example.net']);
    // The server's reply quotes the address; the logs show it masked only.
    expectNoAddressIn(m.logs);
    expect(m.logs.text()).toContain('b***@example.org');
  });

  it('sends to the others when one recipient is deferred (451), nacks, and the redelivery sends only the deferred one', async () => {
    let deferring = true;
    const server = await smtpServer({ rcptTo: (address) => (deferring && address === 'carla@example.net' ? smtpReply(451, '4.7.1 greylisted, try again later') : undefined) });
    const m = mailer(transport(server.url));
    const requestId = newRequestId();
    const data = announcementData({ requestId });

    expect(await handleAnnouncement(data, m.deps)).toMatchObject({ outcome: 'nack', sent: 2, rejected: 0, pending: 1 });
    expect((await deliveries(requestId))['carla@example.net']).toMatchObject({ status: 'pending', attempts: 1 });

    deferring = false;
    expect(await handleAnnouncement(data, m.deps)).toEqual({ outcome: 'ack', sent: 1, skipped: 2, rejected: 0, pending: 0 });
    expect(arrivedTo(server)).toEqual([...RECIPIENTS].sort());
    expect((await deliveries(requestId))['carla@example.net']).toMatchObject({ status: 'sent', attempts: 2 });
  });

  it('nacks without claiming anyone when the link cannot be signed now, and acks when it never can', async () => {
    const server = await smtpServer();
    const requestId = newRequestId();
    const data = announcementData({ requestId });
    const flaky = mailer(transport(server.url), { signLink: async () => Promise.reject(new Error('metadata server timeout')) });
    expect(await handleAnnouncement(data, flaky.deps)).toEqual({
      outcome: 'nack', sent: 0, skipped: 0, rejected: 0, pending: 3, reason: 'link or e-mail: metadata server timeout',
    });
    const gone = mailer(transport(server.url), {
      signLink: async () => Promise.reject(new InvalidRequestError('object', 'generation 1763751900123456 no longer exists')),
    });
    expect(await handleAnnouncement(data, gone.deps)).toMatchObject({ outcome: 'ack', sent: 0, reason: 'no link can be made: object: generation 1763751900123456 no longer exists' });
    expect(await deliveries(requestId)).toEqual({});
    expect(server.messages).toHaveLength(0);
  });
});

describe('handleAnnouncement: malformed announcements', () => {
  it.each([
    ['not JSON', Buffer.from('{"requestId": "r1", '), /^malformed announcement: not JSON$/],
    ['a JSON array', Buffer.from('[1, 2]'), /^malformed announcement: announcement: expected a JSON object/],
    ['a missing request id', announcementData({ requestId: undefined }), /^malformed announcement: requestId: expected a non-empty text/],
    ['a missing bucket', announcementData({ bucket: undefined }), /^malformed announcement: bucket: /],
    ['no recipients', announcementData({ recipients: [] }), /^malformed announcement: recipients: expected at least one recipient$/],
    ['a bad e-mail address', announcementData({ recipients: ['ana@example.com', 'bruno@example'] }), /^malformed announcement: recipients\[1\]: "b\*\*\*@example" is not a valid e-mail address$/],
    ['an unknown locale', announcementData({ locale: 'fr' }), /^malformed announcement: locale: expected one of en, es, pt/],
  ])('acks %s with the reason and sends nothing', async (_, data, reason) => {
    const server = await smtpServer();
    const m = mailer(transport(server.url));
    const result = await handleAnnouncement(data, m.deps);
    expect(result).toMatchObject({ outcome: 'ack', sent: 0, skipped: 0, rejected: 0, pending: 0 });
    expect(result.reason).toMatch(reason);
    expect(m.logs.entries.some((entry) => entry.reason === result.reason)).toBe(true);
    expect(server.messages).toHaveLength(0);
    expect(server.rcptTo).toHaveLength(0);
    expect(m.signed).toBe(0);
    expectNoAddressIn(m.logs, [...RECIPIENTS, 'bruno@example']);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM audit_export_deliveries WHERE request_id = 'req-2026-11-21-0001'`);
    expect(rows[0]).toEqual({ n: 0 });
  });
});

describe('handleAnnouncement: concurrency and the duplicate window', () => {
  it('sends each e-mail once when three mailers handle the same announcement at the same time', async () => {
    // A slow 250 keeps the claims overlapping.
    const server = await smtpServer({ dataDelayMs: 150 });
    const recipients = Array.from({ length: 10 }, (_, i) => `user${i}@example.com`);
    const requestId = newRequestId();
    const data = announcementData({ requestId, recipients });
    const pools: pg.Pool[] = [db.pool];
    for (let i = 0; i < 2; i += 1) {
      const pool = createPool(db.url, { max: 3 });
      cleanup.push(() => pool.end());
      pools.push(pool);
    }
    const mailers = pools.map((pool) => mailer(transport(server.url), { pool }));

    const results = await Promise.all(mailers.map((m) => handleAnnouncement(data, m.deps)));

    expect(results.reduce((sum, result) => sum + result.sent, 0)).toBe(10);
    expect(arrivedTo(server)).toEqual([...recipients].sort());
    // The last to finish finds every recipient done, so at least it acknowledges.
    expect(results.some((result) => result.outcome === 'ack')).toBe(true);
    for (const result of results) {
      expect(result.sent + result.skipped).toBe(10);
      if (result.outcome === 'nack') expect(result.reason).toMatch(/being sent by another mailer$/);
    }
    const rows = await deliveries(requestId);
    expect(Object.values(rows).map((row) => [row.status, row.attempts])).toEqual(recipients.map(() => ['sent', 1]));
    // Whoever nacked gets the message again: now there is nothing left to send.
    expect(await handleAnnouncement(data, mailers[0]!.deps)).toMatchObject({ outcome: 'ack', sent: 0, skipped: 10 });
    expect(server.messages).toHaveLength(10);
    for (const m of mailers) expectNoAddressIn(m.logs, recipients);
  });

  it('leaves a recipient alone while another mailer\'s claim is live, and takes the claim over once its lease ran out', async () => {
    const server = await smtpServer();
    const requestId = newRequestId();
    const data = announcementData({ requestId, recipients: ['ana@example.com'] });
    // A mailer that claimed the recipient and died: it may or may not have sent the e-mail.
    const dead = await claimDelivery(db.pool, requestId, 'ana@example.com', { leaseMs: 1000 });
    expect(dead.claimed).toBe(true);

    const m = mailer(transport(server.url), { leaseMs: 1000 });
    expect(await handleAnnouncement(data, m.deps)).toEqual({
      outcome: 'nack', sent: 0, skipped: 1, rejected: 0, pending: 0, reason: '1 recipient(s) being sent by another mailer',
    });
    expect(server.messages).toHaveLength(0);

    await sleep(1100);
    expect(await handleAnnouncement(data, m.deps)).toEqual({ outcome: 'ack', sent: 1, skipped: 0, rejected: 0, pending: 0 });
    expect((await deliveries(requestId))['ana@example.com']).toMatchObject({ status: 'sent', attempts: 2 });
    expect(m.logs.entries.some((entry) => /took over an expired claim/.test(String(entry.msg)))).toBe(true);
  });
});

describe('handleAnnouncement: rate-limited transport', () => {
  it('sends 20 e-mails through a pool of 2 connections limited to 5 messages a second (timing reported, not asserted)', async () => {
    const recipients = Array.from({ length: 20 }, (_, i) => `reader${String(i).padStart(2, '0')}@example.com`);
    const timings: string[] = [];
    for (const rateLimit of [5, undefined]) {
      const server = await smtpServer();
      const m = mailer(transport(server.url, { maxConnections: 2, ...(rateLimit === undefined ? {} : { rateLimit }) }));
      const data = announcementData({ requestId: newRequestId(), recipients });
      const started = performance.now();
      const result = await handleAnnouncement(data, m.deps);
      const lastAccepted = Math.max(...server.messages.map((message) => message.acceptedAt));
      expect(result).toEqual({ outcome: 'ack', sent: 20, skipped: 0, rejected: 0, pending: 0 });
      expect(arrivedTo(server)).toEqual(recipients);
      timings.push(
        `${rateLimit === undefined ? 'no rate limit' : `rateLimit ${rateLimit}/s`}, maxConnections 2: ` +
          `20 e-mails, handleAnnouncement start to last 250 = ${(lastAccepted - started).toFixed(0)} ms`,
      );
    }
    console.log(`[mail timing] ${timings.join('; ')}`);
  });
});
