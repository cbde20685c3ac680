/**
 * What logs may show of personal data and secrets. Pure functions over text and JSON values; the
 * logger (cli/logger.ts) applies {@link redactLogValue} to every line it writes, so no call site
 * has to remember to.
 *
 * Rules, in the order they apply to text:
 * 1. Secrets: the user-info of URLs (`postgres://user:pw@host` → `postgres://***@host`), `Bearer`
 *    and `Basic` credentials, signing and token query parameters (`X-Goog-Signature=***`), PEM
 *    private keys.
 * 2. E-mail addresses: `ana@example.com` → `a***@example.com` (the domain stays: it tells which
 *    mail provider a failure is about, and is not personal).
 * 3. Phone numbers: replaced by `[phone]`. See {@link redactPhones} for what counts as one.
 *
 * Fields are also judged by name, at any depth: secrets (`password`, `token`, `authorization`,
 * `privateKey`...) become `[redacted]`, phone fields (`phone`, `mobile`...) become `[redacted]`
 * whatever their value, and e-mail fields (`email`, `recipients`...) have their addresses masked
 * even when the value is not shaped like one.
 */
import { createHash } from 'node:crypto';

/**
 * An e-mail address as logs may show it: the first character of the local part, then `***`, then
 * the domain (`a***@example.com`). Text without an `@` becomes `***`.
 */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return '***';
  return `${address.slice(0, Math.min(1, at))}***@${address.slice(at + 1)}`;
}

/**
 * A stable pseudonym of an address (12 hex digits of its SHA-256, case-insensitive), so log lines
 * about one recipient can be correlated without showing it.
 */
export function hashEmail(address: string): string {
  return createHash('sha256').update(address.toLowerCase()).digest('hex').slice(0, 12);
}

// A local part of letters, digits and . _ % + - (no quotes: a quoted address in a message would
// otherwise take its opening quote along), then a domain of one or more labels. No TLD is required:
// an invalid address such as `foo@bar` is still someone's address. `node_modules/@scope` in a stack
// has no local part and is left alone; an address already masked (`a***@x`) is not matched again.
// The lookbehind starts a match only where a run of such characters starts, so a long run without
// an @ is scanned once, not once per character.
const EMAIL = /(?<![\p{L}\p{N}\p{M}._%+-])[\p{L}\p{N}\p{M}._%+-]+@[\p{L}\p{N}\p{M}-]+(?:\.[\p{L}\p{N}\p{M}-]+)*/gu;

/** `text` with every e-mail address masked by {@link maskEmail}: SMTP replies, error messages, any log text. */
export function redactEmails(text: string): string {
  return text.replace(EMAIL, maskEmail);
}

/** What a phone number is replaced by. */
export const PHONE_MASK = '[phone]';

// A candidate: an optional +, then digit groups joined by one space, dot or dash, or by an area
// code in parentheses. It must not continue a word, a decimal or a dashed id (the lookbehinds),
// nor run into letters, a colon (a time: `2026-09-01 08:00`) or a further dashed or dotted group
// (the lookahead), so a UUID's or a timestamp's digits are never taken apart. `tel:+57...` starts
// after a word and a colon and is taken; `08:00:00.123456` (after a digit and a colon) is not.
// At most 15 groups (a phone has at most 15 digits): bounds the backtracking, so a long line of
// numbers costs linear time, not quadratic.
const PHONE_CANDIDATE =
  /(?<![\p{L}\p{N}_+./])(?<![\p{L}\p{N}][-.])(?<!\p{N}:)(?:\+ ?)?(?:\(\d{1,4}\)[ .-]?)?\d+(?:(?:[ .-]|[ .-]?\(\d{1,4}\)[ .-]?)\d+){0,14}(?![\p{L}\p{N}_:]|[-./]\d)/gu;
const ISO_DATE = /(?:^|\D)\d{4}-\d{1,2}-\d{1,2}(?:\D|$)/;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const DECIMAL = /^\d+\.\d+$/;

/** Fewest digits of a number written without a leading `+` that is taken for a phone number. */
export const MIN_PHONE_DIGITS = 10;
/** Fewest digits of a number written with a leading `+`. */
export const MIN_INTERNATIONAL_PHONE_DIGITS = 8;
/** Most digits of a phone number (E.164, country code included). */
export const MAX_PHONE_DIGITS = 15;

function isPhone(candidate: string): boolean {
  const digits = candidate.replace(/\D/g, '').length;
  const international = candidate.startsWith('+');
  if (digits < (international ? MIN_INTERNATIONAL_PHONE_DIGITS : MIN_PHONE_DIGITS) || digits > MAX_PHONE_DIGITS) return false;
  return !ISO_DATE.test(candidate) && !IPV4.test(candidate) && !DECIMAL.test(candidate);
}

/** The longest prefix of `candidate`, cut at a space, that is a phone number; undefined when none is. */
function phonePrefix(candidate: string): string | undefined {
  for (let end = candidate.length; end > 0; end = candidate.lastIndexOf(' ', end - 1)) {
    const prefix = candidate.slice(0, end);
    if (isPhone(prefix)) return prefix;
  }
  return undefined;
}

/**
 * `text` with phone numbers replaced by {@link PHONE_MASK}. A phone number is a run of digit
 * groups (joined by one space, dot or dash, or around an area code in parentheses) with
 * {@link MIN_PHONE_DIGITS} to {@link MAX_PHONE_DIGITS} digits, or from
 * {@link MIN_INTERNATIONAL_PHONE_DIGITS} digits when it starts with `+`: `+57 300 123 4567`,
 * `(601) 555-0100`, `3001234567`, `+1-202-555-0147`, `573001234567`.
 *
 * Not taken: numbers of 9 digits or fewer without a `+` (counts, byte sizes under 1 GB, ports, pids,
 * and short local numbers such as `555-0100`), digits that are part of a word or id (`m-3001234567`,
 * a UUID, a hex digest), ISO dates and timestamps, IPv4 addresses and decimals. A bare run of 10
 * to 15 digits in free text is taken for a phone number even when it is a count: log counts as
 * numeric fields, which are never touched.
 */
export function redactPhones(text: string): string {
  return text.replace(PHONE_CANDIDATE, (candidate) => {
    const phone = phonePrefix(candidate);
    return phone === undefined ? candidate : PHONE_MASK + candidate.slice(phone.length);
  });
}

// Credentials in URLs: the user-info (`user:password@`), and query parameters that sign or
// authorize a request or name a resumable upload session (a capability by itself).
// Up to the last @ before the host: a user name that is an unencoded address is still credentials.
const URL_USER_INFO = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'<>]+@/gi;
const SECRET_QUERY = /([?&](?:x-goog-signature|x-goog-credential|signature|sig|token|access_token|id_token|key|api_key|apikey|upload_id|password|client_secret)=)[^&\s"'<>#]+/gi;
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/-]+=*/g;
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g;

/** `text` with the secrets of rule 1 masked: URL credentials, `Bearer`/`Basic` credentials, signing and token query parameters, PEM private keys. */
export function redactSecrets(text: string): string {
  return text
    .replace(PRIVATE_KEY, '[private key]')
    .replace(URL_USER_INFO, '$1***@')
    .replace(SECRET_QUERY, '$1***')
    .replace(AUTH_SCHEME, '$1 ***');
}

/** `text` with secrets, e-mail addresses and phone numbers masked, in that order. */
export function redactText(text: string): string {
  return redactPhones(redactEmails(redactSecrets(text)));
}

/** What secret and phone fields show. */
export const REDACTED = '[redacted]';

const normalizeKey = (key: string): string => key.toLowerCase().replace(/[^a-z0-9]/g, '');

const SECRET_KEYS = new Set([
  'password',
  'passwd',
  'pwd',
  'secret',
  'clientsecret',
  'token',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'apikey',
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'privatekey',
  'sessionuri',
]);
const PHONE_KEYS = new Set(['phone', 'phones', 'phonenumber', 'mobile', 'mobilenumber', 'msisdn', 'tel', 'telephone', 'cellphone']);
const EMAIL_KEYS = new Set(['email', 'emails', 'emailaddress', 'mail', 'recipient', 'recipients', 'cc', 'bcc', 'replyto']);
// Identifiers are shown as they are (they may be long digit strings: Pub/Sub message ids, object
// generations, bigint ids), but never with an e-mail address in them, except a Message-ID, which
// this program makes up from a digest.
const IDENTIFIER_KEY = /^(?:id|ids|generation|worker|coalescedInto|.*(?:Id|Ids|_id|_ids|Hash))$/;
const MESSAGE_ID_KEY = /^messageId$/i;

function redactLeaf(value: string, key: string | undefined): string {
  if (key !== undefined && MESSAGE_ID_KEY.test(key)) return value;
  if (key !== undefined && IDENTIFIER_KEY.test(key)) return redactEmails(redactSecrets(value));
  return redactText(value);
}

/**
 * A JSON value as logs may show it: every string redacted by {@link redactText}, and fields judged
 * by name at any depth (see the module comment). Numbers and booleans are kept, except under a
 * secret or phone field. `key` is the name of the field holding `value`, if any.
 */
export function redactLogValue(value: unknown, key?: string): unknown {
  const name = key === undefined ? undefined : normalizeKey(key);
  if (name !== undefined && (SECRET_KEYS.has(name) || PHONE_KEYS.has(name))) {
    return value === null || value === undefined || value === '' ? value : REDACTED;
  }
  if (name !== undefined && EMAIL_KEYS.has(name) && typeof value === 'string') {
    // Whatever the text rule left with an @ in it (`"a b"@x`, `a,b@x`) is masked as a whole.
    const masked = redactText(value);
    return /(?<!\*\*\*)@/.test(masked) ? maskEmail(value.trim()) : masked;
  }
  if (typeof value === 'string') return redactLeaf(value, key);
  if (Array.isArray(value)) return value.map((item) => redactLogValue(item, key));
  if (typeof value === 'object' && value !== null) {
    const result: Record<string, unknown> = {};
    for (const [field, item] of Object.entries(value)) result[field] = redactLogValue(item, field);
    return result;
  }
  return value;
}
