import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, runCli, startCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, parseCsv, temporaryDirectory } from './support/export.js';
import type { FakeGcs } from './support/fake-gcs.js';
import { loadFixture } from './support/fixture.js';
import { BUCKET, startDeliveryServices, type DeliveryServices } from './support/services.js';
import type { TestSmtpServer } from './support/smtp.js';

const db = useTestDatabase();
let services: DeliveryServices;
let fake: FakeGcs;
let smtp: TestSmtpServer;
let env: Record<string, string>;
let subscription: string;

// Merchant 1's bot 5 (fixture) has one dialog, chat 1001, stopped on slot 50. Bot 7 gets three
// dialogs here: two stopped on slot 71, one on a message without a slot; a chat of bot 7 without
// bot messages is no dialog. Bot 8 has none.
const BOTS_SQL = `
INSERT INTO bots (id, merchant_id, name) VALUES (7, 1, 'Ventas Bot'), (8, 1, 'Idle Bot');
INSERT INTO bot_slots (id, bot_id, name, text) VALUES (71, 7, '=precio', E'Precios:\\r\\n- uno\\n- dos'), (72, 7, 'adios', NULL);
INSERT INTO chats (id, merchant_id, provider, contact_id, bot_id, status, created_at) VALUES
  (3001, 1, 'web', 10, 7, 'CLOSED', '2026-09-02T12:00:00Z'),
  (3002, 1, 'web', 10, 7, 'OPENED', '2026-09-03T12:00:00Z'),
  (3003, 1, 'web', 11, 7, 'PICKED_UP', '2026-09-04T12:00:00Z'),
  (3004, 1, 'web', 11, 7, 'CLOSED', '2026-09-05T12:00:00Z');
INSERT INTO messages (id, chat_id, created_at, sender, type, body, bot_slot_id) VALUES
  (30011, 3001, '2026-09-02T12:00:01Z', 'bot', 'text', 'hola', 72),
  (30012, 3001, '2026-09-02T12:00:02Z', 'bot', 'text', 'precios', 71),
  (30013, 3001, '2026-09-02T12:00:03Z', 'contact', 'text', 'ok', NULL),
  (30021, 3002, '2026-09-03T12:00:01Z', 'bot', 'text', 'precios', 71),
  (30031, 3003, '2026-09-04T12:00:01Z', 'bot', 'text', 'sin slot', NULL),
  (30041, 3004, '2026-09-05T12:00:01Z', 'contact', 'text', 'solo contacto', NULL);`;

beforeAll(async () => {
  await loadFixture(db.pool);
  await db.pool.query(BOTS_SQL);
  services = await startDeliveryServices(db);
  ({ fake, smtp, mailerSubscription: subscription } = services);
  env = { ...services.env, OUTPUT_URI: `gs://${BUCKET}/reports`, MAIL_FROM: 'Reports <reports@b2chat.test>' };
}, 120_000);

afterAll(async () => {
  await services?.close();
});

const HEADER = ['Slot ID', 'Slot Name', 'Slot Text', 'Dialogs', 'Share'];

describe('stop-slots report, end to end', () => {
  it('five identical requests give one CSV per bot and one set of e-mails with 24-hour links', async () => {
    const request = (n: number): string =>
      JSON.stringify({
        kind: 'stop-slots', merchantId: 1, from: '2026-09-01', to: '2026-10-01', requestId: `slots-${n}`,
        requestedBy: { userId: 'u-1', email: 'owner@merchant.test' },
      });
    const results = [];
    for (let n = 1; n <= 5; n++) results.push(await runCli(['run'], { ...env, EXPORT_REQUEST: request(n) }));
    expect(results.map((result) => result.code)).toEqual([0, 0, 0, 0, 0]);
    expect(results.map((result) => result.summary?.status)).toEqual(['delivered', 'coalesced', 'coalesced', 'coalesced', 'coalesced']);
    const reports = results[0]!.summary?.reports as { botId: string; uri: string; rows: number }[];
    expect(reports.map((report) => [report.botId, report.rows])).toEqual([['5', 1], ['7', 2], ['8', 0]]);
    expect(results[4]!.summary?.reports).toEqual(reports);

    const csvOf = (uri: string): string[][] => parseCsv(fake.object(BUCKET, uri.slice(`gs://${BUCKET}/`.length))!.bytes);
    expect(csvOf(reports[0]!.uri)).toEqual([HEADER, ['50', 'welcome', 'Hi\n\nChoose', '1', '100.00']]);
    expect(csvOf(reports[1]!.uri)).toEqual([HEADER, ['71', "'=precio", 'Precios:\n- uno\n- dos', '2', '66.67'], ['', '(none)', '', '1', '33.33']]);
    expect(csvOf(reports[2]!.uri)).toEqual([HEADER]);
    expect(fake.object(BUCKET, reports[2]!.uri.slice(`gs://${BUCKET}/`.length))!.contentType).toMatch(/^text\/csv/);

    const mailer = startCli(['mailer', '--subscription', subscription], env);
    try {
      await smtp.waitForMessages(3, 30_000);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(smtp.messages).toHaveLength(3);
      const subjects = smtp.messages.map((mail) => mail.parsed.subject).sort();
      expect(subjects).toEqual([
        'B2Chat Exporting messages: Idle Bot (2026-09-01 - 2026-10-01)',
        'B2Chat Exporting messages: Menu Bot (2026-09-01 - 2026-10-01)',
        'B2Chat Exporting messages: Ventas Bot (2026-09-01 - 2026-10-01)',
      ]);
      for (const mail of smtp.messages) {
        expect(mail.to).toEqual(['owner@merchant.test']);
        expect(mail.parsed.text).toContain('one snapshot for all bots of the request');
        const link = new URL(/https?:\/\/\S+X-Goog-Signature=[0-9a-f]+/.exec(mail.parsed.text ?? '')![0]);
        expect(link.searchParams.get('X-Goog-Expires')).toBe('86400');
        const response = await fetch(link);
        expect(response.status).toBe(200);
        expect(parseCsv(Buffer.from(await response.arrayBuffer()))[0]).toEqual(HEADER);
      }
    } finally {
      mailer.kill('SIGTERM');
      await collect(mailer);
    }
  });

  it('rejects a --bot that is not a bot of --merchant with exit 2, naming it, and writes nothing', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(
      ['export', 'stop-slots', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-01', '--bot', '5', '--bot', '6', '--out', `file://${out}`],
      { DATABASE_URL: db.url },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--bot: bot 6 is not a bot of merchant 1/);
    expect(await listFiles(out)).toEqual([]);
  });

  it('exports chosen bots from the CLI with the summary line', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(
      ['export', 'stop-slots', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-01', '--bot', '8', '--bot', '7', '--no-bom', '--out', `file://${out}`],
      { DATABASE_URL: db.url },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(Object.keys(result.summary ?? {})).toEqual(['requestId', 'kind', 'reports']);
    expect(result.summary?.kind).toBe('stop-slots');
    const reports = result.summary?.reports as { botId: string; rows: number }[];
    expect(reports.map((report) => [report.botId, report.rows])).toEqual([['8', 0], ['7', 2]]);
    expect(await listFiles(out)).toHaveLength(2);
  });
});
