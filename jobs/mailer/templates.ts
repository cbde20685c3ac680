import type { Locale, ReadyAnnouncement } from '../announcement.js';

/** The signed download link an e-mail carries. */
export interface DownloadLink {
  /** `https:` (a signed Cloud Storage URL), `http:` or `file:` (local exports, demo and tests). */
  readonly url: string;
  readonly expiresAt: Date;
}

/** Options of {@link renderDownloadEmail}; the caller reads them from `MAIL_BRAND` and `MAIL_SUBJECT`. */
export interface RenderOptions {
  /** The product name the e-mail speaks for (`B2Chat`). */
  readonly brand: string;
  /** Replaces the default subject (`<brand> Exporting messages`) in every locale. */
  readonly subject?: string;
  /** IANA zone the expiry is shown in; default the export's zone, else UTC. */
  readonly timeZone?: string;
}

/** A rendered e-mail: the HTML and the plain text say the same. */
export interface RenderedEmail {
  readonly subject: string;
  readonly text: string;
  readonly html: string;
}

/** One labelled line of an e-mail's summary; plain text, escaped when put into HTML. */
export interface DetailLine {
  readonly label: string;
  readonly value: string;
}

/** The subject after the brand unless configured: `B2Chat Exporting messages`. */
export const DEFAULT_SUBJECT = 'Exporting messages';

/** The words every e-mail uses, per locale. */
interface Words {
  /** BCP 47 tag for dates and numbers. */
  readonly tag: string;
  readonly greeting: string;
  readonly intro: string;
  readonly download: string;
  readonly copyLink: string;
  readonly expires: (when: string) => string;
  readonly report: string;
  readonly merchant: string;
  readonly range: string;
  readonly rangeValue: (from: string, to: string, zone: string) => string;
  readonly filters: string;
  readonly none: string;
  readonly rows: string;
  readonly size: string;
  /** The `Format` line's label and its values: a zip of CSV files, one CSV file, an Excel workbook. */
  readonly format: string;
  readonly formats: { readonly zippedCsv: string; readonly csv: string; readonly xlsx: string };
  readonly requestId: string;
  readonly footer: (brand: string) => string;
}

const WORDS: Readonly<Record<Locale, Words>> = {
  en: {
    tag: 'en-US',
    greeting: 'Hello,',
    intro: 'The export you requested is ready. Download the file here:',
    download: 'Download the file',
    copyLink: 'If the button does not work, copy this link into your browser:',
    expires: (when) => `The link expires on ${when}. After that, request the export again.`,
    report: 'Report',
    merchant: 'Merchant ID',
    range: 'Date range',
    rangeValue: (from, to, zone) => `${from} to ${to} (end not included), time zone ${zone}`,
    filters: 'Filters',
    none: 'none',
    rows: 'Rows',
    size: 'File size',
    format: 'Format',
    formats: { zippedCsv: 'CSV (zipped)', csv: 'CSV', xlsx: 'Excel workbook (.xlsx)' },
    requestId: 'Request ID',
    footer: (brand) => `This is an automatic message from ${brand}. Please do not reply to it.`,
  },
  es: {
    tag: 'es',
    greeting: 'Hola:',
    intro: 'La exportación que solicitaste está lista. Descarga el archivo aquí:',
    download: 'Descargar el archivo',
    copyLink: 'Si el botón no funciona, copia este enlace en tu navegador:',
    expires: (when) => `El enlace vence el ${when}. Después de esa fecha tendrás que solicitar la exportación de nuevo.`,
    report: 'Informe',
    merchant: 'ID de la empresa',
    range: 'Periodo',
    rangeValue: (from, to, zone) => `del ${from} al ${to} (sin incluir el final), zona horaria ${zone}`,
    filters: 'Filtros',
    none: 'ninguno',
    rows: 'Filas',
    size: 'Tamaño del archivo',
    format: 'Formato',
    formats: { zippedCsv: 'CSV (comprimido en zip)', csv: 'CSV', xlsx: 'Libro de Excel (.xlsx)' },
    requestId: 'ID de la solicitud',
    footer: (brand) => `Este es un mensaje automático enviado por ${brand}. Por favor, no lo respondas.`,
  },
  pt: {
    tag: 'pt-BR',
    greeting: 'Olá,',
    intro: 'A exportação que você solicitou está pronta. Baixe o arquivo aqui:',
    download: 'Baixar o arquivo',
    copyLink: 'Se o botão não funcionar, copie este link no seu navegador:',
    expires: (when) => `O link expira em ${when}. Depois disso, será preciso solicitar a exportação novamente.`,
    report: 'Relatório',
    merchant: 'ID da empresa',
    range: 'Período',
    rangeValue: (from, to, zone) => `de ${from} a ${to} (sem incluir o final), fuso horário ${zone}`,
    filters: 'Filtros',
    none: 'nenhum',
    rows: 'Linhas',
    size: 'Tamanho do arquivo',
    format: 'Formato',
    formats: { zippedCsv: 'CSV (compactado em zip)', csv: 'CSV', xlsx: 'Pasta de trabalho do Excel (.xlsx)' },
    requestId: 'ID da solicitação',
    footer: (brand) => `Esta é uma mensagem automática enviada por ${brand}. Por favor, não responda.`,
  },
};

/** What a kind's template can read to word its subject and lines. */
export interface EmailContext {
  readonly announcement: ReadyAnnouncement;
  readonly locale: Locale;
  readonly brand: string;
  /** BCP 47 tag for the locale's dates and numbers. */
  readonly languageTag: string;
}

/**
 * What a report kind adds to the common e-mail. A new kind (`stop-slots`: a subject naming the bot
 * and the range) is one more entry in {@link KIND_TEMPLATES}; the rest of the e-mail stays as is.
 */
export interface KindTemplate {
  /** The kind's name per locale, shown as the report. */
  readonly title: Readonly<Record<Locale, string>>;
  /** Names of the kind's filters per locale; a filter without one is shown by its key. */
  readonly filterLabels?: Readonly<Record<Locale, Readonly<Record<string, string>>>>;
  /** The subject, given the configured or default one (`base`); default `base` itself. */
  readonly subject?: (base: string, context: EmailContext) => string;
  /** Lines after the common details and before the request id. */
  readonly details?: (context: EmailContext) => readonly DetailLine[];
}

/** The e-mail additions of each report kind; a kind not listed gets the common e-mail, named by its key. */
export const KIND_TEMPLATES: Readonly<Record<string, KindTemplate>> = {
  conversations: {
    title: { en: 'Conversations', es: 'Conversaciones', pt: 'Conversas' },
    filterLabels: {
      en: { agentIds: 'Agents (ID)', providers: 'Channels', aliases: 'Aliases', statuses: 'Statuses' },
      es: { agentIds: 'Agentes (ID)', providers: 'Canales', aliases: 'Alias', statuses: 'Estados' },
      pt: { agentIds: 'Agentes (ID)', providers: 'Canais', aliases: 'Apelidos', statuses: 'Status' },
    },
  },
  'stop-slots': {
    title: { en: 'Stop slots (where bot dialogs ended)', es: 'Slots de parada (dónde terminaron los diálogos del bot)', pt: 'Slots de parada (onde os diálogos do bot terminaram)' },
    filterLabels: { en: { botIds: 'Bots (ID)' }, es: { botIds: 'Bots (ID)' }, pt: { botIds: 'Bots (ID)' } },
    subject: (base, { announcement }) => {
      const bot = announcement.report?.botName ?? '';
      const { from, to } = announcement.parameters;
      return `${base}: ${bot} (${from} - ${to})`;
    },
    details: ({ announcement, locale }) => {
      const bot = announcement.report === undefined ? '' : `${announcement.report.botName} (ID ${announcement.report.botId})`;
      const snapshot = {
        en: 'The numbers are what the database held when the request was processed: one snapshot for all bots of the request.',
        es: 'Las cifras son las que tenía la base de datos al procesar la solicitud: una sola instantánea para todos los bots de la solicitud.',
        pt: 'Os números são os que o banco de dados tinha quando a solicitação foi processada: um único instantâneo para todos os bots da solicitação.',
      }[locale];
      const botLabel = { en: 'Bot', es: 'Bot', pt: 'Bot' }[locale];
      const dataLabel = { en: 'Data', es: 'Datos', pt: 'Dados' }[locale];
      return [
        { label: botLabel, value: bot },
        { label: dataLabel, value: snapshot },
      ];
    },
  },
};

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const BYTE_UNITS = ['kilobyte', 'megabyte', 'gigabyte', 'terabyte', 'petabyte'] as const;

/**
 * A byte count for people, in decimal (SI) units with at most one decimal, in the locale's
 * number format: `812 B`, `1.2 MB`, `1,2 MB`.
 */
export function formatBytes(bytes: number, languageTag: string): string {
  if (bytes < 1000) return `${new Intl.NumberFormat(languageTag).format(bytes)} B`;
  let value = bytes / 1000;
  let unit = 0;
  // 999.96 kB would print as "1,000 kB": move up before rounding does.
  while (value >= 999.95 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return new Intl.NumberFormat(languageTag, {
    style: 'unit',
    unit: BYTE_UNITS[unit],
    unitDisplay: 'short',
    maximumFractionDigits: 1,
  }).format(value);
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** `November 28, 2026 at 2:05 PM (America/Bogota, GMT-05:00)`, in the locale's words. */
function formatExpiry(when: Date, languageTag: string, timeZone: string): string {
  const date = new Intl.DateTimeFormat(languageTag, { dateStyle: 'long', timeStyle: 'short', timeZone }).format(when);
  const offset =
    new Intl.DateTimeFormat('en', { timeZone, timeZoneName: 'longOffset' })
      .formatToParts(when)
      .find((part) => part.type === 'timeZoneName')?.value ?? '';
  // "UTC, GMT+00:00" would say the same twice.
  return `${date} (${offset === '' || timeZone === 'UTC' ? timeZone : `${timeZone}, ${offset}`})`;
}

function requireLink(link: DownloadLink): DownloadLink {
  let url: URL;
  try {
    url = new URL(link.url);
  } catch {
    throw new TypeError(`Expected \`link.url\` to be an absolute URL, got ${JSON.stringify(link.url)}`);
  }
  // The link becomes an href: anything but a download location (javascript:, data:) is refused.
  if (url.protocol !== 'https:' && url.protocol !== 'http:' && url.protocol !== 'file:') {
    throw new TypeError(`Expected \`link.url\` to be an https:, http: or file: URL, got ${JSON.stringify(link.url)}`);
  }
  if (!(link.expiresAt instanceof Date) || Number.isNaN(link.expiresAt.getTime())) {
    throw new TypeError(`Expected \`link.expiresAt\` to be a valid Date, got ${String(link.expiresAt)}`);
  }
  return link;
}

// A header is one line: a configured subject or brand with a line break would end it early.
function oneLine(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(`Expected \`${name}\` to be a non-empty text, got ${JSON.stringify(value)}`);
  }
  return value.replace(/\s+/g, ' ').trim();
}

/**
 * What the announced file is, from its name: a workbook (`.xlsx`), a zip of CSV files (`.zip`) or
 * one CSV file. The name is what the recipient downloads, so it cannot disagree with the e-mail.
 */
export function announcementFormat(announcement: Pick<ReadyAnnouncement, 'object'>): 'xlsx' | 'zippedCsv' | 'csv' {
  const name = announcement.object.toLowerCase();
  if (name.endsWith('.xlsx')) return 'xlsx';
  return name.endsWith('.zip') ? 'zippedCsv' : 'csv';
}

/**
 * Renders the e-mail that hands one recipient the download link of a ready export, in the
 * announcement's locale (en, es, pt): subject, plain text and HTML with the same content. The body
 * gives the link, when it expires (date and time in `timeZone`, named with its UTC offset), the
 * report kind, merchant, date range with its zone, the filters used (or none), the row count, the
 * file size (decimal units), the format (CSV zipped, CSV, or Excel workbook) and the request id. The HTML escapes every value it interpolates.
 *
 * The subject is `options.subject` if set, else `<brand> Exporting messages` in the locale, and a
 * kind's template may build on it (see {@link KIND_TEMPLATES}).
 *
 * @throws TypeError for an empty brand or subject, an unknown `timeZone`, a link that is not an
 * https:, http: or file: URL, or an invalid expiry date.
 */
export function renderDownloadEmail(
  announcement: ReadyAnnouncement,
  link: DownloadLink,
  options: RenderOptions,
): RenderedEmail {
  const brand = oneLine('options.brand', options.brand);
  const { url, expiresAt } = requireLink(link);
  if (options.timeZone !== undefined && !isTimeZone(options.timeZone)) {
    throw new TypeError(`Expected \`options.timeZone\` to be an IANA time zone, got ${JSON.stringify(options.timeZone)}`);
  }
  const exportZone = announcement.parameters.timezone;
  const timeZone = options.timeZone ?? (exportZone !== '' && isTimeZone(exportZone) ? exportZone : 'UTC');
  const locale = announcement.locale;
  const words = WORDS[locale];
  // Own keys only: a kind or filter named `constructor` must not find Object.prototype's.
  const kind = Object.hasOwn(KIND_TEMPLATES, announcement.kind) ? KIND_TEMPLATES[announcement.kind] : undefined;
  const context: EmailContext = { announcement, locale, brand, languageTag: words.tag };

  // The default subject is the same in every locale: the platform's merchants filter on it.
  const base = options.subject === undefined ? `${brand} ${DEFAULT_SUBJECT}` : oneLine('options.subject', options.subject);
  const subject = oneLine('subject', kind?.subject?.(base, context) ?? base);

  const { from, to, filters } = announcement.parameters;
  const filterLabels = kind?.filterLabels?.[locale] ?? {};
  const usedFilters = Object.entries(filters)
    .filter(([, values]) => values.length > 0)
    .map(([key, values]) => `${(Object.hasOwn(filterLabels, key) ? filterLabels[key] : undefined) ?? key}: ${values.join(', ')}`);
  const details: DetailLine[] = [
    { label: words.report, value: kind?.title[locale] ?? announcement.kind },
    { label: words.merchant, value: announcement.merchantId },
    ...(from === '' && to === '' ? [] : [{ label: words.range, value: words.rangeValue(from, to, exportZone || 'UTC') }]),
    { label: words.filters, value: usedFilters.length === 0 ? words.none : usedFilters.join('; ') },
    { label: words.rows, value: new Intl.NumberFormat(words.tag).format(announcement.rows) },
    { label: words.size, value: formatBytes(announcement.bytes, words.tag) },
    { label: words.format, value: words.formats[announcementFormat(announcement)] },
    ...(kind?.details?.(context) ?? []),
    { label: words.requestId, value: announcement.requestId },
  ];
  const expiry = words.expires(formatExpiry(expiresAt, words.tag, timeZone));
  const footer = words.footer(brand);

  const text = [
    words.greeting,
    '',
    words.intro,
    url,
    '',
    expiry,
    '',
    ...details.map((line) => `${line.label}: ${line.value}`),
    '',
    '-- ',
    footer,
    '',
  ].join('\n');

  const cell = 'padding:4px 12px 4px 0;vertical-align:top;text-align:left';
  const html = [
    '<!DOCTYPE html>',
    `<html lang="${escapeHtml(words.tag)}">`,
    `<head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>`,
    '<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.5;color:#222222">',
    `<p>${escapeHtml(words.greeting)}</p>`,
    `<p>${escapeHtml(words.intro)}</p>`,
    `<p><a href="${escapeHtml(url)}" style="display:inline-block;padding:10px 18px;background:#1a73e8;color:#ffffff;text-decoration:none;border-radius:4px">${escapeHtml(words.download)}</a></p>`,
    `<p style="font-size:12px;color:#555555">${escapeHtml(words.copyLink)}<br><a href="${escapeHtml(url)}" style="word-break:break-all">${escapeHtml(url)}</a></p>`,
    `<p>${escapeHtml(expiry)}</p>`,
    '<table role="presentation" style="border-collapse:collapse">',
    ...details.map((line) => `<tr><th style="${cell}">${escapeHtml(line.label)}:</th><td style="${cell}">${escapeHtml(line.value)}</td></tr>`),
    '</table>',
    `<p style="font-size:12px;color:#777777">${escapeHtml(footer)}</p>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');

  return { subject, text, html };
}
