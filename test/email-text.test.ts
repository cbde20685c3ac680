import fc from 'fast-check';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { decodeHeaderValue, readEmailText } from '../cli/demo/email-text.js';
import { LOCALES } from '../jobs/announcement.js';
import { renderDownloadEmail } from '../jobs/mailer/templates.js';
import { readyAnnouncement } from './support/announcement.js';

// Nodemailer's stream transport composes exactly what its SMTP transport sends, without a server.
const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });

async function compose(mail: { to: string; subject: string; text: string; html?: string; from?: string }): Promise<Buffer> {
  const info = await composer.sendMail({ from: mail.from ?? 'B2Chat <no-reply@example.com>', ...mail });
  return info.message as Buffer;
}

function crlf(lines: readonly string[]): Buffer {
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

describe('readEmailText', () => {
  it("reads back the download e-mail's text exactly as rendered, in every locale", async () => {
    for (const locale of LOCALES) {
      const announcement = readyAnnouncement({ locale, kind: 'stop-slots', report: { botId: '7', botName: 'Asistente Virtual ñandú ✓' } });
      const email = renderDownloadEmail(announcement, { url: 'file:///tmp/exports/a%20b.csv', expiresAt: new Date('2026-11-28T19:05:00Z') }, { brand: 'B2Chat' });
      const raw = await compose({ to: 'ana@example.com', subject: email.subject, text: email.text, html: email.html });
      const read = readEmailText(raw);
      expect(read.text, locale).toBe(email.text);
      expect(read.subject).toBe(email.subject);
      expect(read.to).toBe('ana@example.com');
      expect(read.from).toBe('B2Chat <no-reply@example.com>');
      expect(read.messageId).toMatch(/^<.+@example\.com>$/);
    }
  });

  it('agrees with mailparser and with what was sent, for any text and subject nodemailer composes', async () => {
    const piece = fc.oneof(
      fc.constantFrom('\n', ' ', '  ', '\t', '=', '=20', '_', '?', '=?utf-8?Q?x?=', 'é', 'ñ', '✓', '😀', '-- ', '.', '\n.\n'),
      fc.string({ unit: 'grapheme-ascii', maxLength: 90 }),
      fc.string({ unit: 'grapheme', maxLength: 30 }),
    );
    // Bare CR is not text a template writes; nodemailer turns it into a line break of its own. An
    // empty text gets no text part at all.
    const text = fc.array(piece, { maxLength: 12 }).map((pieces) => `${pieces.join('').replace(/\r/g, '')}.`);
    await fc.assert(
      fc.asyncProperty(text, text, async (body, subjectText) => {
        const subject = subjectText.replace(/\s+/g, ' ').trim() || 'x';
        const raw = await compose({ to: 'bruno@example.org', subject, text: body, html: '<p>x</p>' });
        const read = readEmailText(raw);
        const parsed = await simpleParser(raw);
        expect(read.text).toBe(body);
        expect(read.subject).toBe(parsed.subject);
        // nodemailer sends some ASCII subjects holding a literal encoded word (`=?utf-8?Q?x?= .`)
        // as they are, and every reader, mailparser included, then decodes them (RFC 2047): for
        // those only the agreement with mailparser above can hold.
        if (!subject.includes('=?')) expect(read.subject).toBe(subject);
      }),
      { numRuns: 150 },
    );
  });

  it('finds the text part inside nested multiparts and skips a text attachment before it', () => {
    const raw = crlf([
      'From: a@example.com',
      'To: b@example.com',
      'Subject: nested',
      'Content-Type: multipart/mixed; boundary="outer"',
      '',
      'preamble, ignored',
      '--outer',
      'Content-Type: text/plain; name="notes.txt"',
      'Content-Disposition: attachment; filename="notes.txt"',
      '',
      'not this',
      '--outer',
      'Content-Type: multipart/alternative; boundary=inner',
      '',
      '--inner',
      'Content-Type: text/plain; charset=iso-8859-1',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('Ol\xe1, a link: https://example.com/x\r\n', 'latin1').toString('base64'),
      '--inner',
      'Content-Type: text/html',
      '',
      '<p>html</p>',
      '--inner--',
      '--outer--',
      'epilogue, ignored',
    ]);
    expect(readEmailText(raw)).toEqual({
      from: 'a@example.com',
      to: 'b@example.com',
      subject: 'nested',
      messageId: '',
      text: 'Olá, a link: https://example.com/x\n',
    });
  });

  it('reads a message without MIME headers as plain text, and one without a text part as having none', () => {
    expect(readEmailText(crlf(['Subject: plain', '', 'line 1', 'line 2'])).text).toBe('line 1\nline 2');
    expect(readEmailText(crlf(['Content-Type: text/html', '', '<p>x</p>'])).text).toBeUndefined();
    expect(readEmailText(crlf(['Content-Type: multipart/mixed', '', 'no boundary'])).text).toBeUndefined();
  });

  it('decodes encoded words: B and Q, adjacent ones joined even when a character is split between them', () => {
    expect(decodeHeaderValue('=?UTF-8?Q?Informe_de_bots=3A_=C3=B1and=C3=BA?=')).toBe('Informe de bots: ñandú');
    const bytes = Buffer.from('ñ', 'utf8');
    const split = `=?utf-8?B?${bytes.subarray(0, 1).toString('base64')}?= =?utf-8?B?${bytes.subarray(1).toString('base64')}?=`;
    expect(decodeHeaderValue(`Bot ${split} end`)).toBe('Bot ñ end');
    expect(decodeHeaderValue('=?iso-8859-1*es?Q?ol=E1?= =?utf-8?Q?_=E2=9C=93?=')).toBe('olá ✓');
    expect(decodeHeaderValue('=?x-unknown?Q?abc?=')).toBe('abc');
    // Regression: a space at the end of a Q word is text, not quoted-printable's line-end padding.
    expect(decodeHeaderValue('=?UTF-8?Q?AAA=22_?= =?UTF-8?Q?=2E?=')).toBe('AAA" .');
  });
});
