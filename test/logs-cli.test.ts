import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS_KEY } from '../config/logs.js';
import { seed } from '../db/seed.js';
import { collect, runCli, startCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { BUCKET, startDeliveryServices, type DeliveryServices } from './support/services.js';
import { smtpReply, startSmtpServer, type TestSmtpServer } from './support/smtp.js';

const db = useTestDatabase();
let services: DeliveryServices;
let smtp: TestSmtpServer;
let env: Record<string, string>;
let merchantId: string;
/** Every e-mail address and phone number of the merchant's contacts and agents, as stored. */
let emails: string[];
let phones: string[];

// Addresses of the data set's contacts receive the e-mails; the SMTP server refuses one of them for
// good with a reply that quotes it and a phone number, as real servers' replies do.
const REFUSED = 'sean.obrien@example.co';
const REFUSAL = `5.1.1 <${REFUSED}>: mailbox unavailable; questions: +57 300 123 4567`;

beforeAll(async () => {
  const seeded = await seed(db.pool, { merchants: 1, messages: 3000, seed: 11 });
  merchantId = String(seeded.firstMerchantId);
  services = await startDeliveryServices(db);
  smtp = await startSmtpServer({ rcptTo: (address) => (address === REFUSED ? smtpReply(550, REFUSAL) : undefined) });
  env = { ...services.env, SMTP_URL: smtp.url, LOG_LEVEL: 'debug', PROGRESS_INTERVAL_MS: '20', HEARTBEAT_MS: '200' };
  const contacts = await db.pool.query<{ value: string | null }>(
    `SELECT email AS value FROM contacts WHERE merchant_id = $1 UNION SELECT phone_number FROM contacts WHERE merchant_id = $1
     UNION SELECT mobile_number FROM contacts WHERE merchant_id = $1 UNION SELECT email FROM agents WHERE merchant_id = $1`,
    [merchantId],
  );
  const values = contacts.rows.map((row) => row.value?.trim() ?? '').filter((value) => value !== '');
  emails = values.filter((value) => /[\p{L}\p{N}._%+-]@[\p{L}\p{N}-]/u.test(value));
  // What the logs promise to hide: numbers of 10 to 15 digits, or from 8 with a leading +.
  phones = values.filter((value) => !value.includes('@') && /^\+?[\d ().-]+$/.test(value) && digits(value).length >= (value.startsWith('+') ? 8 : 10));
}, 180_000);

afterAll(async () => {
  await smtp?.close();
  await services?.close();
});

const digits = (text: string): string => text.replace(/\D/g, '');

/** The JSON lines of a process's stderr, parsed; other lines (`audit-export: ...`) are left out. */
function jsonLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

// Independent of the redaction's own patterns: any address with a local part, and the usual ways
// of writing an international or a ten-digit number.
const ANY_ADDRESS = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*/g;
const ANY_PHONE = /\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,5}){2,4}|(?<![\w-])\d{3}[ .-]?\d{3}[ .-]?\d{4}(?![\w-])/g;

/** Asserts that `text` shows none of the data set's addresses or phone numbers, nor `extra`, nor anything shaped like one. */
function expectNothingPersonal(text: string, extra: readonly string[] = []): void {
  for (const value of [...emails, ...extra]) expect(text.toLowerCase(), `shows ${value}`).not.toContain(value.toLowerCase());
  for (const phone of phones) {
    expect(text, `shows ${phone}`).not.toContain(phone);
    expect(new RegExp(`(?<!\\d)${digits(phone)}(?!\\d)`).test(text), `shows the digits of ${phone}`).toBe(false);
  }
  expect(text.match(ANY_ADDRESS) ?? []).toEqual([]);
  expect(text.match(ANY_PHONE) ?? []).toEqual([]);
}

/** Asserts that every JSON line carries `requestId` as a field and as the Cloud Logging label. */
function expectLabelledLines(lines: readonly Record<string, unknown>[], requestId: string): void {
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) {
    expect(line, JSON.stringify(line)).toMatchObject({ requestId, [LABELS_KEY]: { requestId } });
    expect(typeof line.severity).toBe('string');
    expect(typeof line.message).toBe('string');
  }
}

describe('logs of an export, end to end', () => {
  it('the data set has what the logs must hide', () => {
    expect(emails.length).toBeGreaterThan(10);
    expect(phones.length).toBeGreaterThan(10);
    expect(emails).toContain(REFUSED);
    expect(phones).toContain('+57 300 123 4567');
  });

  it('export with --email, then the mail step: every line of the request is labelled, and none shows an address or a phone number', async () => {
    const recipients = ['maria.perez@example.com', 'cliente+feliz@example.org', REFUSED];
    expect(emails).toEqual(expect.arrayContaining(recipients));
    const exported = await runCli(
      [
        'export', 'conversations', '--merchant', merchantId, '--from', '2026-09-01', '--to', '2026-10-31',
        '--out', `gs://${BUCKET}/logs/`, '--request-id', 'logs-export-1', ...recipients.flatMap((to) => ['--email', to]),
      ],
      env,
    );
    expect(exported.code, exported.stderr).toBe(0);
    const lines = jsonLines(exported.stderr);
    expectLabelledLines(lines, 'logs-export-1');
    const messages = lines.map((line) => line.message);
    expect(messages).toEqual(expect.arrayContaining(['conversation export started', 'export progress', 'conversation export finished', 'announcement published', 'export announced']));
    // Timings and counts at the end of the stages.
    expect(lines.find((line) => line.message === 'conversation export finished')).toMatchObject({
      rows: exported.summary?.rows,
      bytes: exported.summary?.bytes,
      files: 1,
      seconds: expect.any(Number),
      planSeconds: expect.any(Number),
      commitSeconds: expect.any(Number),
    });
    expect(lines.find((line) => line.message === 'export announced')).toMatchObject({ recipients: 3, seconds: expect.any(Number) });
    expectNothingPersonal(exported.stderr);

    const mailer = startCli(['mailer', '--subscription', services.mailerSubscription], env);
    const mailed = collect(mailer);
    let stderr = '';
    mailer.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      // Two sent, one refused for good: the announcement is handled once all three are settled.
      const deadline = performance.now() + 60_000;
      while (!stderr.includes('"message":"announcement handled"') && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      mailer.kill('SIGTERM');
    }
    const mail = await mailed;
    const mailLines = jsonLines(mail.stderr);
    const requestLines = mailLines.filter((line) => line.requestId !== undefined);
    expectLabelledLines(requestLines, 'logs-export-1');
    expect(requestLines.filter((line) => line.message === 'e-mail sent')).toHaveLength(2);
    const refused = requestLines.find((line) => line.message === 'recipient rejected for good: not retried');
    expect(refused).toMatchObject({ recipient: 's***@example.co', responseCode: 550 });
    expect(String(refused?.error)).toContain('s***@example.co>: mailbox unavailable; questions: [phone]');
    expect(requestLines.find((line) => line.message === 'announcement handled')).toMatchObject({ sent: 2, rejected: 1, recipients: 3, seconds: expect.any(Number) });
    // The Message-IDs this program makes up (`<digest.audit-export@sender-domain>`) are ids, kept whole.
    const withoutMessageIds = mailLines.map(({ messageId, ...rest }) => (typeof messageId === 'string' && messageId.startsWith('<') ? rest : { messageId, ...rest }));
    expectNothingPersonal(JSON.stringify(withoutMessageIds), recipients);
    expectNothingPersonal(mail.stderr.split('\n').filter((line) => !line.includes('"messageId":"<')).join('\n'), recipients);
  });

  it('an invalid address or phone number in the flags is named in the error, masked, on a labelled line', async () => {
    const result = await runCli(
      [
        'export', 'conversations', '--merchant', merchantId, '--from', '2026-09-01', '--to', '2026-10-31',
        '--out', `gs://${BUCKET}/logs/`, '--request-id', 'logs-bad-1', '--email', 'carlos@example', '--email', '+57 300 123 4567',
      ],
      env,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('audit-export: invalid request: --email: "c***@example" is not a valid e-mail address');
    expectLabelledLines(jsonLines(result.stderr), 'logs-bad-1');
    expectNothingPersonal(result.stderr, ['carlos@example']);

    const phone = await runCli(
      [
        'export', 'conversations', '--merchant', merchantId, '--from', '2026-09-01', '--to', '2026-10-31',
        '--out', `gs://${BUCKET}/logs/`, '--request-id', 'logs-bad-2', '--email', '(601) 555-0100',
      ],
      env,
    );
    expect(phone.code).toBe(2);
    expect(phone.stderr).toContain('audit-export: invalid request: --email: "[phone]" is not a valid e-mail address');
    expectLabelledLines(jsonLines(phone.stderr), 'logs-bad-2');
    expectNothingPersonal(phone.stderr, ['(601) 555-0100']);
  });

  it('run through the request lifecycle, with requestedBy and recipients: labelled, nothing personal in the logs or the summary', async () => {
    const request = {
      kind: 'conversations',
      requestId: 'logs-run-1',
      merchantId,
      from: '2026-09-01',
      to: '2026-10-01',
      recipients: ['carlos@example.com'],
      requestedBy: { userId: 'u-7', email: 'JOSE.MARTINEZ@EXAMPLE.COM' },
    };
    const result = await runCli(['run'], { ...env, OUTPUT_URI: `gs://${BUCKET}/logs/`, EXPORT_REQUEST: JSON.stringify(request) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.summary).toMatchObject({ requestId: 'logs-run-1', status: 'delivered' });
    const lines = jsonLines(result.stderr);
    expectLabelledLines(lines, 'logs-run-1');
    expect(lines.map((line) => line.message)).toEqual(
      expect.arrayContaining(['export running', 'export progress', 'conversation export finished', 'export announced', 'request processed']),
    );
    expect(lines.at(-1)).toMatchObject({ message: 'request processed', status: 'delivered', exitCode: 0, seconds: expect.any(Number) });
    expectNothingPersonal(result.stdout + result.stderr);

    // Rejected: the reason quotes the bad values; the log line and the summary show them masked.
    const rejected = await runCli(['run'], {
      ...env,
      EXPORT_REQUEST: JSON.stringify({ ...request, requestId: 'logs-run-2', recipients: ['linea@example', 'renee@example.com'], requestedBy: { userId: 1, email: '+57 300 123 4567' } }),
    });
    expect(rejected.code).toBe(2);
    expect(rejected.summary).toMatchObject({ requestId: 'logs-run-2', status: 'rejected' });
    expect(String(rejected.summary?.error)).toMatch(/not a valid e-mail address/);
    expectLabelledLines(jsonLines(rejected.stderr), 'logs-run-2');
    expectNothingPersonal(rejected.stdout + rejected.stderr, ['linea@example']);
  });
});
