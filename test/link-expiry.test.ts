/**
 * A download link never outlives its file: the mail step signs links that end when the bucket's
 * lifecycle deletes the object (its creation + `EXPORT_RETENTION_DAYS`), and does not e-mail a link
 * to an object that is gone or has less than an hour left; it marks the request `expired` instead.
 * Real signer against the fake Cloud Storage (objects aged with `timeCreated`, links judged on the
 * fake's shiftable clock), real SMTP server, real state database.
 */
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLinkSigner } from '../cli/link-signer.js';
import { migrateState } from '../db/migrate.js';
import { handleAnnouncement, type MailerDeps } from '../jobs/mailer/handle.js';
import { createMailTransport, type MailTransport } from '../jobs/mailer/smtp.js';
import { markExpired, readRequest } from '../jobs/lifecycle/state.js';
import { exportRetentionDays, linkWindow, MIN_LINK_LIFETIME_MS } from '../jobs/mailer/link-window.js';
import { announcementData, readyAnnouncement } from './support/announcement.js';
import { useTestDatabase } from './support/database.js';
import { createTestServiceAccount, startFakeGcs, type FakeGcs, type TestServiceAccount } from './support/fake-gcs.js';
import { captureLogs, type CapturedLogs } from './support/logs.js';
import { startSmtpServer, type TestSmtpServer } from './support/smtp.js';

const BUCKET = 'audit-exports';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const RECIPIENTS = ['ana@example.com', 'bruno@example.org'];

const db = useTestDatabase();
let fake: FakeGcs;
let account: TestServiceAccount;
let smtp: TestSmtpServer;
let transport: MailTransport;
let env: Record<string, string>;
let directory: string;

beforeAll(async () => {
  await migrateState(db.pool);
  fake = await startFakeGcs({ buckets: [BUCKET] });
  directory = await mkdtemp(join(tmpdir(), 'audit-export-link-expiry-'));
  account = await createTestServiceAccount(fake, directory);
  smtp = await startSmtpServer();
  transport = createMailTransport({ url: smtp.url, from: 'B2Chat <no-reply@b2chat.example>' });
  env = { GCS_API_ENDPOINT: fake.url, GOOGLE_APPLICATION_CREDENTIALS: account.keyFile, METADATA_SERVER_DETECTION: 'none' };
});

afterAll(async () => {
  transport?.close();
  await smtp?.close();
  await fake?.close();
  if (directory !== undefined) await rm(directory, { recursive: true, force: true });
});

let counter = 0;
/** A request id, object name and announcement fields of their own for each test. */
function newExport(kind: 'conversations' | 'stop-slots' = 'conversations') {
  counter += 1;
  const requestId = `expiry-${process.pid}-${counter}`;
  const object = `exports/${kind}_merchant-42_${requestId}.zip`;
  return { requestId, object, uri: `gs://${BUCKET}/${object}` };
}

/** A whole-second instant: signing truncates to seconds, so the expected figures stay exact. */
function wholeSecondNow(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}

/** Stores an object created `ageMs` before `now` and returns the announcement fields naming it. */
function storedObject(now: Date, ageMs: number, kind: 'conversations' | 'stop-slots' = 'conversations') {
  const { requestId, object, uri } = newExport(kind);
  const stored = fake.putObject(BUCKET, object, Buffer.from(`zip of ${requestId}`), {
    contentType: 'application/zip',
    timeCreated: new Date(now.getTime() - ageMs),
  });
  return {
    requestId,
    kind,
    bucket: BUCKET,
    object,
    uri,
    generation: stored.generation,
    linkSeconds: kind === 'stop-slots' ? 86_400 : 604_800,
    createdAt: stored.timeCreated.toISOString(),
    recipients: RECIPIENTS,
    ...(kind === 'stop-slots' ? { report: { botId: '7', botName: 'Ventas' } } : {}),
  };
}

/** Whether the fake accepts `url` when its clock reads `at`. */
async function acceptedAt(url: string, at: number): Promise<number> {
  fake.clockSkewMs = at - Date.now();
  try {
    return (await fetch(url)).status;
  } finally {
    fake.clockSkewMs = 0;
  }
}

async function insertRequest(requestId: string, status: string): Promise<void> {
  await db.pool.query(
    `INSERT INTO audit_export_requests (request_id, kind, merchant_id, status, finished_at) VALUES ($1, 'conversations', '42', $2, now())`,
    [requestId, status],
  );
}

function mailer(now: Date, logs: CapturedLogs, extraEnv: Record<string, string> = {}): MailerDeps {
  return {
    pool: db.pool,
    transport,
    signLink: createLinkSigner({ ...env, ...extraEnv }, () => now),
    logger: logs.logger,
    brand: 'B2Chat',
    timeZone: 'UTC',
  };
}

const messagesTo = (requestId: string) => smtp.messages.filter((message) => (message.parsed.text ?? '').includes(requestId));

describe('linkWindow', () => {
  const now = new Date('2026-11-28T12:00:00.500Z');
  const at = (ageMs: number, linkSeconds = 604_800) =>
    linkWindow({ now, linkSeconds, objectCreatedAt: new Date(now.getTime() - ageMs), retentionDays: 8 });

  it('is min(now + linkSeconds, creation + retention), with signature seconds that never pass the deletion', () => {
    expect(at(HOUR)).toEqual({ usable: true, expiresAt: new Date(now.getTime() + 604_800_000), seconds: 604_800, shortened: false, deletedAt: new Date(now.getTime() - HOUR + 8 * DAY) });
    const late = at(7.5 * DAY);
    expect(late).toMatchObject({ usable: true, shortened: true, expiresAt: new Date(now.getTime() + 0.5 * DAY) });
    // Signing counts from 12:00:00.000: 43200 s would end 0.5 s before the deletion, 43201 after it.
    expect(late.usable && late.seconds).toBe(43_200);
    expect(at(7.5 * DAY, 86_400)).toMatchObject({ seconds: 43_200, shortened: true });
    expect(at(5 * DAY, 86_400)).toMatchObject({ seconds: 86_400, shortened: false });
  });

  it('is usable with an hour left, not with less', () => {
    expect(at(8 * DAY - MIN_LINK_LIFETIME_MS)).toMatchObject({ usable: true, seconds: 3600 });
    expect(at(8 * DAY - MIN_LINK_LIFETIME_MS + 1)).toEqual({ usable: false, deletedAt: new Date(now.getTime() + MIN_LINK_LIFETIME_MS - 1) });
    expect(at(9 * DAY)).toMatchObject({ usable: false });
  });

  it('refuses invalid dates and counts with a TypeError naming the field', () => {
    expect(() => linkWindow({ now: new Date(Number.NaN), linkSeconds: 1, objectCreatedAt: now, retentionDays: 8 })).toThrow(/`now`/);
    expect(() => linkWindow({ now, linkSeconds: 1, objectCreatedAt: new Date(Number.NaN), retentionDays: 8 })).toThrow(/`objectCreatedAt`/);
    expect(() => linkWindow({ now, linkSeconds: 0, objectCreatedAt: now, retentionDays: 8 })).toThrow(/`linkSeconds`/);
    expect(() => linkWindow({ now, linkSeconds: 60, objectCreatedAt: now, retentionDays: 1.5 })).toThrow(/`retentionDays`/);
  });

  it('reads EXPORT_RETENTION_DAYS, default 8', () => {
    expect(exportRetentionDays({})).toBe(8);
    expect(exportRetentionDays({ EXPORT_RETENTION_DAYS: ' 30 ' })).toBe(30);
    expect(() => exportRetentionDays({ EXPORT_RETENTION_DAYS: '0' })).toThrow(/EXPORT_RETENTION_DAYS: expected a whole number of days from 1 up .*got "0"/);
  });
});

describe('the link ends when the bucket deletes the object', () => {
  it('signs a 7.5-day-old object for the 12 hours it has left (creation + 8 days), not for 7 days from now', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 7.5 * DAY);
    const link = await createLinkSigner(env, () => now)(readyAnnouncement(fields));
    const deletedAt = Date.parse(fields.createdAt) + 8 * DAY;
    expect(new URL(link.url).searchParams.get('X-Goog-Expires')).toBe(String(12 * 3600));
    expect(link.expiresAt.getTime()).toBe(deletedAt);
    // On the service's clock: accepted until the object's end, refused right after.
    expect(await acceptedAt(link.url, deletedAt - 1000)).toBe(200);
    expect(await acceptedAt(link.url, deletedAt + 1000)).toBe(403);
  });

  it('keeps the full 7 days (604800 s) for a fresh object and 24 hours for a stop-slots file', async () => {
    const now = wholeSecondNow();
    const fresh = await createLinkSigner(env, () => now)(readyAnnouncement(storedObject(now, 5 * 60_000)));
    expect(new URL(fresh.url).searchParams.get('X-Goog-Expires')).toBe('604800');
    expect(fresh.expiresAt.getTime()).toBe(now.getTime() + 604_800_000);
    const slots = await createLinkSigner(env, () => now)(readyAnnouncement(storedObject(now, 2 * DAY, 'stop-slots')));
    expect(new URL(slots.url).searchParams.get('X-Goog-Expires')).toBe('86400');
  });

  it('shortens a stop-slots link too when its file has less than 24 hours left', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 8 * DAY - 3 * HOUR, 'stop-slots');
    const link = await createLinkSigner(env, () => now)(readyAnnouncement(fields));
    expect(new URL(link.url).searchParams.get('X-Goog-Expires')).toBe(String(3 * 3600));
  });

  it('follows EXPORT_RETENTION_DAYS, and refuses a value that is not a whole number of days from 1 up, naming it', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 1.5 * DAY);
    const link = await createLinkSigner({ ...env, EXPORT_RETENTION_DAYS: '2' }, () => now)(readyAnnouncement(fields));
    expect(new URL(link.url).searchParams.get('X-Goog-Expires')).toBe(String(12 * 3600));
    for (const bad of ['0', '-1', '1.5', 'eight', '8d']) {
      expect(() => createLinkSigner({ ...env, EXPORT_RETENTION_DAYS: bad }), bad).toThrow(/EXPORT_RETENTION_DAYS: expected a whole number of days from 1 up/);
    }
  });

  it('applies the same rule to a local file:// export, by the file\'s modification time', async () => {
    const now = wholeSecondNow();
    const path = join(directory, 'local-export.zip');
    await writeFile(path, 'zip');
    const modified = new Date(now.getTime() - 7.5 * DAY);
    await utimes(path, modified, modified);
    const local = readyAnnouncement({ bucket: null, uri: pathToFileURL(path).href, object: path, generation: '0' });
    const link = await createLinkSigner(env, () => now)(local);
    expect(link.url).toBe(pathToFileURL(path).href);
    expect(link.expiresAt.getTime()).toBe(modified.getTime() + 8 * DAY);

    await utimes(path, now, now);
    const fresh = await createLinkSigner(env, () => now)(local);
    expect(fresh.expiresAt.getTime()).toBe(now.getTime() + 604_800_000);
  });
});

describe('handleAnnouncement with the real signer', () => {
  it('e-mails a shortened link with its actual expiry, never promising 7 days', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 7.5 * DAY);
    const logs = captureLogs();
    const result = await handleAnnouncement(announcementData(fields), mailer(now, logs));
    expect(result).toEqual({ outcome: 'ack', sent: 2, skipped: 0, rejected: 0, pending: 0 });
    const deletedAt = new Date(Date.parse(fields.createdAt) + 8 * DAY);
    const shown = new Intl.DateTimeFormat('en-US', { dateStyle: 'long', timeStyle: 'short', timeZone: 'UTC' }).format(deletedAt);
    const weekLater = new Intl.DateTimeFormat('en-US', { dateStyle: 'long', timeZone: 'UTC' }).format(new Date(now.getTime() + 7 * DAY));
    const mails = messagesTo(fields.requestId);
    expect(mails).toHaveLength(2);
    for (const mail of mails) {
      const text = mail.parsed.text ?? '';
      expect(text).toContain(`The link expires on ${shown} (UTC)`);
      expect(text).not.toContain(weekLater);
      expect(text).not.toMatch(/7 days|seven days/i);
      expect(text).toContain('X-Goog-Expires=43200');
    }
  });

  it('does not e-mail a link to an object that is gone (404): acks and marks the request expired, saying why', async () => {
    const now = wholeSecondNow();
    const { requestId, object, uri } = newExport();
    await insertRequest(requestId, 'delivered');
    const fields = { requestId, bucket: BUCKET, object, uri, generation: '1763751900123456', recipients: RECIPIENTS };
    const logs = captureLogs();
    const sentBefore = smtp.messages.length;

    const result = await handleAnnouncement(announcementData(fields), mailer(now, logs));

    expect(result).toMatchObject({ outcome: 'ack', sent: 0, pending: 0 });
    expect(result.reason).toBe(`not mailed: object ${uri} is gone`);
    expect(smtp.messages.length).toBe(sentBefore);
    const record = await readRequest(db.pool, requestId);
    expect(record).toMatchObject({ status: 'expired', error: `object ${uri} is gone` });
    const warning = logs.entries.find((entry) => entry.level === 40 && entry.requestId === requestId);
    expect(warning, logs.text()).toMatchObject({ reason: `object ${uri} is gone` });
    for (const address of RECIPIENTS) expect(logs.text()).not.toContain(address);
    const { rows } = await db.pool.query('SELECT * FROM audit_export_deliveries WHERE request_id = $1', [requestId]);
    expect(rows).toEqual([]);

    // The same announcement again (a redelivery, a replay): still nothing sent, the record unchanged.
    expect(await handleAnnouncement(announcementData(fields), mailer(now, captureLogs()))).toMatchObject({ outcome: 'ack', sent: 0 });
    expect(smtp.messages.length).toBe(sentBefore);
    expect(await readRequest(db.pool, requestId)).toMatchObject({ status: 'expired', error: `object ${uri} is gone` });
  });

  it('treats a replaced generation as gone: the link must never serve another file', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, DAY);
    await insertRequest(fields.requestId, 'delivered');
    fake.putObject(BUCKET, fields.object, Buffer.from('another file'), { contentType: 'application/zip' });
    const result = await handleAnnouncement(announcementData(fields), mailer(now, captureLogs()));
    expect(result).toMatchObject({ outcome: 'ack', sent: 0, reason: `not mailed: object ${fields.uri} is gone` });
    expect(messagesTo(fields.requestId)).toHaveLength(0);
  });

  it('does not e-mail a link with less than an hour left: acks and marks the request expired with the deletion time', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 8 * DAY - 30 * 60_000);
    await insertRequest(fields.requestId, 'delivered');
    const logs = captureLogs();
    const result = await handleAnnouncement(announcementData(fields), mailer(now, logs));
    const deletedAt = new Date(Date.parse(fields.createdAt) + 8 * DAY).toISOString();
    const why = `object ${fields.uri} expires at ${deletedAt} (EXPORT_RETENTION_DAYS=8 after its creation), within an hour`;
    expect(result).toMatchObject({ outcome: 'ack', sent: 0, pending: 0, reason: `not mailed: ${why}` });
    expect(messagesTo(fields.requestId)).toHaveLength(0);
    expect(await readRequest(db.pool, fields.requestId)).toMatchObject({ status: 'expired', error: why });
    expect(logs.entries.find((entry) => entry.level === 40)).toMatchObject({ requestId: fields.requestId, reason: why });
    for (const address of RECIPIENTS) expect(logs.text()).not.toContain(address);
  });

  it('sends a link with just over an hour left', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 8 * DAY - HOUR - 60_000);
    const result = await handleAnnouncement(announcementData(fields), mailer(now, captureLogs()));
    expect(result).toMatchObject({ outcome: 'ack', sent: 2 });
    for (const mail of messagesTo(fields.requestId)) expect(mail.parsed.text).toContain(`X-Goog-Expires=${3600 + 60}`);
  });

  it('acks an expired announcement without a request record (an `export --email` run) and says so', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 9 * DAY);
    const logs = captureLogs();
    const result = await handleAnnouncement(announcementData(fields), mailer(now, logs));
    expect(result).toMatchObject({ outcome: 'ack', sent: 0 });
    const deletedAt = new Date(Date.parse(fields.createdAt) + 8 * DAY).toISOString();
    expect(result.reason).toBe(`not mailed: object ${fields.uri} is past its retention: due for deletion since ${deletedAt} (EXPORT_RETENTION_DAYS=8 after its creation)`);
    expect(await readRequest(db.pool, fields.requestId)).toBeUndefined();
    expect(logs.entries.find((entry) => entry.level === 40)).toMatchObject({ requestId: fields.requestId, requestStatus: null });
  });

  it('marks a stop-slots request expired for one bot\'s file while naming that file', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 8 * DAY, 'stop-slots');
    await insertRequest(fields.requestId, 'delivered');
    const result = await handleAnnouncement(announcementData(fields), mailer(now, captureLogs()));
    expect(result).toMatchObject({ outcome: 'ack', sent: 0 });
    const record = await readRequest(db.pool, fields.requestId);
    expect(record?.status).toBe('expired');
    expect(record?.error).toContain(fields.uri);
  });

  it('nacks, sending nothing, when the expiry cannot be recorded (the state database is down)', async () => {
    const now = wholeSecondNow();
    const fields = storedObject(now, 9 * DAY);
    const pool = {
      query: async (text: string, values?: unknown[]) => {
        if (text.includes('UPDATE audit_export_requests')) throw new Error('connection terminated');
        return await db.pool.query(text, values);
      },
    } as unknown as MailerDeps['pool'];
    const result = await handleAnnouncement(announcementData(fields), { ...mailer(now, captureLogs()), pool });
    expect(result).toMatchObject({ outcome: 'nack', sent: 0, pending: 2, reason: 'state database: connection terminated' });
    expect(messagesTo(fields.requestId)).toHaveLength(0);
  });
});

describe('markExpired', () => {
  it('moves uploaded or delivered to expired, keeps one reason per file once each, and leaves other statuses alone', async () => {
    const { requestId } = newExport();
    await insertRequest(requestId, 'delivered');
    expect(await markExpired(db.pool, requestId, 'object gs://b/bot-1.zip is gone')).toBe('expired');
    expect(await markExpired(db.pool, requestId, 'object gs://b/bot-1.zip is gone')).toBe('expired');
    expect(await markExpired(db.pool, requestId, 'object gs://b/bot-2.zip is gone')).toBe('expired');
    expect((await readRequest(db.pool, requestId))?.error).toBe('object gs://b/bot-1.zip is gone; object gs://b/bot-2.zip is gone');

    const uploaded = newExport().requestId;
    await insertRequest(uploaded, 'uploaded');
    expect(await markExpired(db.pool, uploaded, 'gone')).toBe('expired');
    const cancelled = newExport().requestId;
    await insertRequest(cancelled, 'cancelled');
    expect(await markExpired(db.pool, cancelled, 'gone')).toBe('cancelled');
    expect(await markExpired(db.pool, 'no-such-request', 'gone')).toBeUndefined();
  });
});
