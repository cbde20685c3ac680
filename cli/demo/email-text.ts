/**
 * Reads what a person looks at first in a received e-mail (From, To, Subject and the plain-text
 * part) out of the raw RFC 5322 message, so the demo can print what its local inbox received
 * rather than what it meant to send. Enough MIME for what nodemailer writes: nested multiparts,
 * quoted-printable and base64 bodies, RFC 2047 encoded words in any charset `TextDecoder` knows.
 * Not a general parser (no RFC 2231 parameters, no uuencode); the tests hold it to mailparser's
 * reading of the demo's messages.
 */

/** The parts of an e-mail {@link readEmailText} reads. */
export interface EmailText {
  /** Header values, encoded words decoded; empty when the header is missing. */
  readonly from: string;
  readonly to: string;
  readonly subject: string;
  readonly messageId: string;
  /** The first `text/plain` part that is not an attachment, decoded, lines ending in `\n`; undefined when there is none. */
  readonly text: string | undefined;
}

/** One MIME entity: headers (lower-case names, first occurrence) and the body as a byte string (latin1). */
interface Entity {
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
}

// A message nests multiparts only a few levels deep; a hostile one must not recurse without end.
const MAX_DEPTH = 8;

function splitEntity(source: string): Entity {
  let head: string;
  let body: string;
  const noHeaders = /^\r?\n/.exec(source);
  if (noHeaders !== null) {
    head = '';
    body = source.slice(noHeaders[0].length);
  } else {
    const end = /\r?\n\r?\n/.exec(source);
    head = end === null ? source : source.slice(0, end.index);
    body = end === null ? '' : source.slice(end.index + end[0].length);
  }
  const headers = new Map<string, string>();
  // Unfolding removes the line break before continuation whitespace, not the whitespace (RFC 5322 2.2.3).
  for (const line of head.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

/** Decodes bytes in `charset`; a charset `TextDecoder` does not know is read as latin1 rather than failing. */
function decodeBytes(bytes: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset.trim().toLowerCase()).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** Bytes of a latin1 byte string (how raw message text is held here). */
function bytesOf(byteString: string): Buffer {
  return Buffer.from(byteString, 'latin1');
}

/** The bytes of a byte string whose `=XX` escapes stand for bytes; anything else stands for itself. */
function unescapeHex(text: string): Buffer {
  const bytes: number[] = [];
  for (let index = 0; index < text.length; index += 1) {
    const hex = text.slice(index + 1, index + 3);
    if (text[index] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      index += 2;
    } else {
      bytes.push(text.charCodeAt(index) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** RFC 2045 6.7 quoted-printable: trailing whitespace is transport padding, `=` at a line end a soft break. */
function decodeQuotedPrintable(byteString: string): Buffer {
  return unescapeHex(byteString.replace(/[ \t]+(?=\r?\n|$)/g, '').replace(/=(?:\r?\n|$)/g, ''));
}

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

/** The bytes of one encoded word's text. */
function encodedWordBytes(encoding: string, text: string): Buffer {
  if (encoding === 'B' || encoding === 'b') return Buffer.from(text, 'base64');
  // Q encoding: `_` is a space, `=XX` a byte (RFC 2047 4.2); a word has no line ends to pad.
  return unescapeHex(text.replace(/_/g, ' '));
}

/**
 * Decodes a header value: RFC 2047 encoded words, the whitespace between adjacent ones dropped and
 * adjacent words of one charset decoded together (an encoder may split a character between them);
 * other text as UTF-8 (8-bit headers).
 */
export function decodeHeaderValue(value: string): string {
  let output = '';
  let pending: { charset: string; bytes: Buffer[] } | undefined;
  const flush = (): void => {
    if (pending !== undefined) output += decodeBytes(Buffer.concat(pending.bytes), pending.charset);
    pending = undefined;
  };
  let last = 0;
  for (const match of value.matchAll(ENCODED_WORD)) {
    const between = value.slice(last, match.index);
    if (!(pending !== undefined && /^\s*$/.test(between))) {
      flush();
      output += decodeBytes(bytesOf(between), 'utf-8');
    }
    // RFC 2231 allows a language after the charset: `utf-8*en`.
    const charset = (match[1] ?? '').split('*')[0] ?? '';
    const bytes = encodedWordBytes(match[2] ?? 'Q', match[3] ?? '');
    if (pending !== undefined && pending.charset.toLowerCase() !== charset.toLowerCase()) flush();
    pending ??= { charset, bytes: [] };
    pending.bytes.push(bytes);
    last = (match.index ?? 0) + match[0].length;
  }
  flush();
  return output + decodeBytes(bytesOf(value.slice(last)), 'utf-8');
}

/** A structured header value (`text/plain; charset="utf-8"`): the lower-cased value and its parameters. */
function structured(value: string | undefined): { value: string; parameters: Map<string, string> } {
  const parameters = new Map<string, string>();
  if (value === undefined) return { value: '', parameters };
  const semicolon = value.indexOf(';');
  const main = (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  const rest = semicolon < 0 ? '' : value.slice(semicolon);
  for (const match of rest.matchAll(/;\s*([^=\s;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g)) {
    const name = (match[1] ?? '').toLowerCase();
    const quoted = match[2];
    parameters.set(name, quoted === undefined ? (match[3] ?? '') : quoted.replace(/\\(.)/g, '$1'));
  }
  return { value: main, parameters };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The body parts of a multipart body. The line break before a delimiter belongs to the delimiter
 * (RFC 2046 5.1.1), so a part's content ends before it; the preamble and epilogue are dropped.
 */
function multipartParts(body: string, boundary: string): string[] {
  const delimiter = new RegExp(`(?:^|\\r?\\n)--${escapeRegExp(boundary)}(--)?[ \\t]*(?:\\r?\\n|$)`, 'g');
  const parts: string[] = [];
  let start: number | undefined;
  for (const match of body.matchAll(delimiter)) {
    if (start !== undefined) parts.push(body.slice(start, match.index));
    if (match[1] === '--') return parts;
    start = (match.index ?? 0) + match[0].length;
  }
  // No close delimiter: a truncated message; keep what the last part has.
  if (start !== undefined) parts.push(body.slice(start));
  return parts;
}

function decodeBody(entity: Entity): Buffer {
  const encoding = structured(entity.headers.get('content-transfer-encoding')).value;
  if (encoding === 'quoted-printable') return decodeQuotedPrintable(entity.body);
  if (encoding === 'base64') return Buffer.from(entity.body.replace(/\s+/g, ''), 'base64');
  return bytesOf(entity.body);
}

function findText(entity: Entity, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (structured(entity.headers.get('content-disposition')).value === 'attachment') return undefined;
  const type = structured(entity.headers.get('content-type'));
  // No Content-Type means text/plain in US-ASCII (RFC 2045 5.2).
  const mediaType = type.value === '' ? 'text/plain' : type.value;
  if (mediaType.startsWith('multipart/')) {
    const boundary = type.parameters.get('boundary');
    if (boundary === undefined || boundary === '') return undefined;
    for (const part of multipartParts(entity.body, boundary)) {
      const text = findText(splitEntity(part), depth + 1);
      if (text !== undefined) return text;
    }
    return undefined;
  }
  if (mediaType !== 'text/plain') return undefined;
  return decodeBytes(decodeBody(entity), type.parameters.get('charset') ?? 'utf-8').replace(/\r\n/g, '\n');
}

/** Reads From, To, Subject, Message-ID and the plain text of a raw message (see the module's note on scope). */
export function readEmailText(raw: Buffer): EmailText {
  const message = splitEntity(raw.toString('latin1'));
  const header = (name: string): string => decodeHeaderValue(message.headers.get(name) ?? '');
  return {
    from: header('from'),
    to: header('to'),
    subject: header('subject'),
    messageId: header('message-id'),
    text: findText(message, 0),
  };
}
