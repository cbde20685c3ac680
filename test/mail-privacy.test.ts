import { describe, expect, it } from 'vitest';
import { hashEmail, maskEmail, redactEmails } from '../jobs/mailer/privacy.js';

describe('e-mail addresses in logs', () => {
  it.each([
    ['ana@example.com', 'a***@example.com'],
    ['a@example.com', 'a***@example.com'],
    ['@example.com', '***@example.com'],
    ['no-address', '***'],
  ])('masks %j as %j', (address, masked) => {
    expect(maskEmail(address)).toBe(masked);
  });

  it('hashes an address the same whatever its case, and different addresses differently', () => {
    expect(hashEmail('Ana@Example.com')).toBe(hashEmail('ana@example.com'));
    expect(hashEmail('ana@example.com')).toMatch(/^[0-9a-f]{12}$/);
    expect(hashEmail('ana@example.com')).not.toBe(hashEmail('bruno@example.com'));
  });

  it('masks every address in an SMTP reply or an error message', () => {
    expect(redactEmails("Can't send mail - all recipients were rejected: 550 5.1.1 <bruno@example.org>: mailbox unavailable")).toBe(
      "Can't send mail - all recipients were rejected: 550 5.1.1 <b***@example.org>: mailbox unavailable",
    );
    expect(redactEmails('recipients[1]: "bruno@example" is not a valid e-mail address; also carla@example.net, ana@example.com')).toBe(
      'recipients[1]: "b***@example" is not a valid e-mail address; also c***@example.net, a***@example.com',
    );
    expect(redactEmails('250 Ok: queued as 4XyZ')).toBe('250 Ok: queued as 4XyZ');
  });
});
