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

// Anything with an @ inside that is not a delimiter: SMTP replies quote addresses as <a@b>, and the
// announcement's errors quote them as JSON strings.
const ADDRESS_LIKE = /[^\s<>"'(),;:[\]\\]+@[^\s<>"'(),;:[\]\\]*/g;

/** `text` with every address-like word masked by {@link maskEmail}: for SMTP replies and error messages. */
export function redactEmails(text: string): string {
  return text.replace(ADDRESS_LIKE, maskEmail);
}
