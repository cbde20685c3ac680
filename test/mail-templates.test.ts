import { describe, expect, it } from 'vitest';
import { formatBytes, renderDownloadEmail, type DownloadLink } from '../jobs/mailer/templates.js';
import { fakeSignLink, readyAnnouncement } from './support/announcement.js';

const link: DownloadLink = {
  url: 'https://storage.example.test/exports/a.zip?X-Goog-Expires=604800&X-Goog-Signature=5f2a9c',
  expiresAt: new Date('2026-11-28T19:05:00Z'),
};

/** The text of an HTML fragment as a browser shows it: tags dropped, character references decoded. */
function visibleText(html: string): string {
  return html
    // A table cell boundary reads as a space; other tags as nothing.
    .replace(/<\/t[hd]>/g, ' ')
    .replace(/<[^>]*>/g, '')
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
}

function hrefs(html: string): string[] {
  return [...html.matchAll(/href="([^"]*)"/g)].map((match) => visibleText(match[1] ?? '').trim());
}

// What a reader of each language should find; written out by hand, not taken from the templates.
const EXPECTED = {
  en: {
    subject: 'B2Chat Exporting messages',
    lines: [
      'Hello,',
      'The export you requested is ready.',
      'The link expires on November 28, 2026 at 2:05',
      'Report: Conversations',
      'Merchant ID: 42',
      'Date range: 2026-09-01 to 2026-10-31 (end not included), time zone America/Bogota',
      'Filters: Channels: WHATSAPP; Statuses: CLOSED',
      'Rows: 123,456',
      'File size: 1.2 MB',
      'Request ID: req-2026-11-21-0001',
    ],
    none: 'Filters: none',
  },
  es: {
    subject: 'B2Chat Exporting messages',
    lines: [
      'Hola:',
      'La exportación que solicitaste está lista.',
      'El enlace vence el 28 de noviembre de 2026',
      '14:05',
      'Informe: Conversaciones',
      'ID de la empresa: 42',
      'Periodo: del 2026-09-01 al 2026-10-31 (sin incluir el final), zona horaria America/Bogota',
      'Filtros: Canales: WHATSAPP; Estados: CLOSED',
      'Filas: 123.456',
      'Tamaño del archivo: 1,2 MB',
      'ID de la solicitud: req-2026-11-21-0001',
    ],
    none: 'Filtros: ninguno',
  },
  pt: {
    subject: 'B2Chat Exporting messages',
    lines: [
      'Olá,',
      'A exportação que você solicitou está pronta.',
      'O link expira em 28 de novembro de 2026 às 14:05',
      'Relatório: Conversas',
      'ID da empresa: 42',
      'Período: de 2026-09-01 a 2026-10-31 (sem incluir o final), fuso horário America/Bogota',
      'Filtros: Canais: WHATSAPP; Status: CLOSED',
      'Linhas: 123.456',
      'Tamanho do arquivo: 1,2 MB',
      'ID da solicitação: req-2026-11-21-0001',
    ],
    none: 'Filtros: nenhum',
  },
} as const;

describe('renderDownloadEmail', () => {
  it.each(['en', 'es', 'pt'] as const)('words the e-mail in %s, in text and HTML alike', (locale) => {
    const expected = EXPECTED[locale];
    const email = renderDownloadEmail(readyAnnouncement({ locale }), link, { brand: 'B2Chat' });
    expect(email.subject).toBe(expected.subject);
    const html = visibleText(email.html);
    for (const line of expected.lines) {
      expect(email.text).toContain(line);
      expect(html).toContain(line.replace(/\s+/g, ' '));
    }
    // The expiry states its zone and offset; the link is there, whole, in both parts.
    expect(email.text).toContain('(America/Bogota, GMT-05:00)');
    expect(email.text).toContain(link.url);
    expect(hrefs(email.html)).toEqual([link.url, link.url]);
    expect(email.html).toContain(`<html lang="${locale === 'en' ? 'en-US' : locale === 'pt' ? 'pt-BR' : 'es'}">`);
  });

  it.each(['en', 'es', 'pt'] as const)('says when no filter was used (%s)', (locale) => {
    const announcement = readyAnnouncement({ locale, parameters: { from: '2026-09-01', to: '2026-10-31', timezone: 'America/Bogota', filters: { statuses: [] } } });
    const email = renderDownloadEmail(announcement, link, { brand: 'B2Chat' });
    expect(email.text).toContain(EXPECTED[locale].none);
    expect(visibleText(email.html)).toContain(EXPECTED[locale].none);
  });

  it('escapes everything it puts into the HTML, and keeps the plain text as written', () => {
    const announcement = readyAnnouncement({
      merchantId: '42 & <b>co</b>',
      requestId: 'req"><img src=x onerror=alert(1)>',
      parameters: { from: '2026-09-01', to: '2026-10-31', timezone: 'America/Bogota', filters: { aliases: ['<script>alert("x")</script>', "O'Brien"] } },
    });
    const email = renderDownloadEmail(announcement, { ...link, url: 'https://storage.example.test/a.zip?a=1&b="2"' }, { brand: 'B2Chat <Ops>' });
    expect(email.html).not.toMatch(/<script|<img|<b>|<Ops>/);
    expect(email.html).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;');
    expect(email.html).toContain('O&#39;Brien');
    expect(email.html).toContain('42 &#38; &#60;b&#62;co&#60;/b&#62;');
    expect(email.html).toContain('href="https://storage.example.test/a.zip?a=1&#38;b=&#34;2&#34;"');
    expect(visibleText(email.html)).toContain(`Aliases: <script>alert("x")</script>, O'Brien`);
    expect(email.text).toContain(`Filters: Aliases: <script>alert("x")</script>, O'Brien`);
    expect(email.text).toContain('Request ID: req"><img src=x onerror=alert(1)>');
    expect(email.text).toContain('This is an automatic message from B2Chat <Ops>.');
  });

  it('takes a configured brand and subject, and shows the expiry in a configured zone', () => {
    const announcement = readyAnnouncement({ locale: 'es' });
    const branded = renderDownloadEmail(announcement, link, { brand: 'Acme' });
    expect(branded.subject).toBe('Acme Exporting messages');
    expect(branded.text).toContain('enviado por Acme.');
    const configured = renderDownloadEmail(announcement, link, { brand: 'Acme', subject: 'Tu archivo\r\nBcc: x@evil.example', timeZone: 'UTC' });
    expect(configured.subject).toBe('Tu archivo Bcc: x@evil.example');
    expect(configured.text).toContain('El enlace vence el 28 de noviembre de 2026 a las 19:05 (UTC)');
  });

  it('names an unknown kind by its key and its filters by theirs', () => {
    const email = renderDownloadEmail(
      readyAnnouncement({ kind: 'constructor', parameters: { from: '', to: '', timezone: '', filters: { botIds: ['7'] } } }),
      link,
      { brand: 'B2Chat' },
    );
    expect(email.subject).toBe('B2Chat Exporting messages');
    expect(email.text).toContain('Report: constructor');
    expect(email.text).toContain('Filters: botIds: 7');
    expect(email.text).not.toContain('Date range');
    expect(email.text).toContain('November 28, 2026 at 7:05');
    expect(email.text).toContain('(UTC)');
  });

  it('renders what the stand-in signer gives for a real announcement', async () => {
    const announcement = readyAnnouncement();
    const signed = await fakeSignLink(announcement);
    const email = renderDownloadEmail(announcement, signed, { brand: 'B2Chat' });
    expect(email.text).toContain(signed.url);
    expect(email.text).toContain('The link expires on November 28, 2026 at 2:05');
  });

  it('refuses a link that is not a download location, a bad expiry, zone or brand', () => {
    const announcement = readyAnnouncement();
    expect(() => renderDownloadEmail(announcement, { ...link, url: 'javascript:alert(1)' }, { brand: 'B2Chat' })).toThrow(
      new TypeError('Expected `link.url` to be an https:, http: or file: URL, got "javascript:alert(1)"'),
    );
    expect(() => renderDownloadEmail(announcement, { ...link, url: '/relative.zip' }, { brand: 'B2Chat' })).toThrow(
      new TypeError('Expected `link.url` to be an absolute URL, got "/relative.zip"'),
    );
    expect(() => renderDownloadEmail(announcement, { ...link, expiresAt: new Date('nope') }, { brand: 'B2Chat' })).toThrow(
      new TypeError('Expected `link.expiresAt` to be a valid Date, got Invalid Date'),
    );
    expect(() => renderDownloadEmail(announcement, link, { brand: 'B2Chat', timeZone: 'Mars/Olympus' })).toThrow(
      new TypeError('Expected `options.timeZone` to be an IANA time zone, got "Mars/Olympus"'),
    );
    expect(() => renderDownloadEmail(announcement, link, { brand: ' ' })).toThrow(
      new TypeError('Expected `options.brand` to be a non-empty text, got " "'),
    );
  });
});

describe('formatBytes', () => {
  it.each([
    [0, 'en-US', '0 B'],
    [999, 'en-US', '999 B'],
    [1000, 'en-US', '1 kB'],
    [1_234_567, 'en-US', '1.2 MB'],
    [1_234_567, 'es', '1,2 MB'],
    [999_960, 'en-US', '1 MB'],
    [5_368_709_120, 'pt-BR', '5,4 GB'],
  ])('%d bytes in %s is %s', (bytes, tag, expected) => {
    expect(formatBytes(bytes, tag)).toBe(expected);
  });
});
