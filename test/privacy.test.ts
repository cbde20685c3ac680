import { describe, expect, it } from 'vitest';
import {
  hashEmail,
  maskEmail,
  PHONE_MASK,
  REDACTED,
  redactEmails,
  redactLogValue,
  redactPhones,
  redactSecrets,
  redactText,
} from '../config/privacy.js';

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

  it.each([
    ['--email: "foo@bar" is not a valid e-mail address', '--email: "f***@bar" is not a valid e-mail address'],
    ['Key (email)=(zoë@ejemplo.example) already exists.', 'Key (email)=(z***@ejemplo.example) already exists.'],
    ['=HYPERLINK("mailto:x@example.com")', '=HYPERLINK("mailto:x***@example.com")'],
    ['cliente+feliz@example.org wrote.', 'c***@example.org wrote.'],
    ['JOSE.MARTINEZ@EXAMPLE.COM', 'J***@EXAMPLE.COM'],
  ])('masks the address in %j', (text, masked) => {
    expect(redactEmails(text)).toBe(masked);
  });

  it('leaves text without an address alone, and masks an address only once', () => {
    const stack = 'Error: boom\n    at file:///app/node_modules/@google-cloud/pubsub/build/src/index.js:12:5';
    expect(redactEmails(stack)).toBe(stack);
    expect(redactEmails('a***@example.com')).toBe('a***@example.com');
  });
});

describe('phone numbers in logs', () => {
  it.each([
    '+57 300 123 4567',
    '(601) 555-0100',
    '3001234567',
    '+1-202-555-0147',
    '573001234567',
    '+573001234567',
    '300-123-4567',
    '00573001234567',
    '601 555 0100',
    '+34 600 000 000',
    '+55 11 91234-5678',
    '+81 90-1234-5678',
    '+91 91234 56789',
    '+52 55 1234 5678',
    '+1 (212) 555-0199',
    '300.123.4567',
  ])('masks %j, alone and inside text', (phone) => {
    expect(redactPhones(phone)).toBe(PHONE_MASK);
    expect(redactPhones(`Failing row contains (10, Ana, ${phone}, 2026-09-01 08:00:00-05).`)).toBe(
      `Failing row contains (10, Ana, ${PHONE_MASK}, 2026-09-01 08:00:00-05).`,
    );
    expect(redactPhones(`"phone":"${phone}"`)).toBe(`"phone":"${PHONE_MASK}"`);
  });

  it.each([
    ['-300 123 4567', `-${PHONE_MASK}`],
    ['+1 (212) 555-0199 ext. 12', `${PHONE_MASK} ext. 12`],
    ['Key (phone_number)=(3001234567) already exists', `Key (phone_number)=(${PHONE_MASK}) already exists`],
    ['tel:+573001234567', `tel:${PHONE_MASK}`],
    ['call +57 300 123 4567 2026-10-01', `call ${PHONE_MASK} 2026-10-01`],
    ['601 555 0100\n', `${PHONE_MASK}\n`],
  ])('masks the number in %j', (text, masked) => {
    expect(redactPhones(text)).toBe(masked);
  });

  it.each([
    '2026-09-01T08:00:00-05:00',
    '2026-09-01T13:00:00.000Z',
    '2026-09-01 08:00:00-05',
    '2026-09-01 08:00:00.123456-05',
    '[2026-09-01, 2026-10-31)',
    '2026-09-01 2026-10-01',
    'range 2026-09-01 12 chats',
    '550e8400-e29b-41d4-a716-446655440000',
    '12345678-1234-1234-1234-123456789012',
    'conversations_merchant-1_2026-09-01_2026-10-31_e2e-1.zip',
    '1234 rows',
    '123456789 bytes',
    'exported 1,234,567 rows in 12.345 s',
    'listening on 127.0.0.1:54321 and 192.168.100.200',
    '12345.6789012',
    'worker host-1:12345:ab12cd34',
    'request backfill-m3001234567-2026-09',
    'digest 3001234567abcdef',
    'projects/123456789012/topics/ready',
    'elapsed 1:02:03, ETA 0:07',
    '555-0100',
    '+5730',
    '=1+2',
    'duration PT1H30M',
  ])('leaves %j alone', (text) => {
    expect(redactPhones(text)).toBe(text);
  });

  it('takes a bare run of 10 to 15 digits for a phone number, not shorter or longer ones', () => {
    expect(redactPhones('n=123456789')).toBe('n=123456789');
    expect(redactPhones('n=1234567890')).toBe(`n=${PHONE_MASK}`);
    expect(redactPhones('n=123456789012345')).toBe(`n=${PHONE_MASK}`);
    expect(redactPhones('n=1234567890123456')).toBe('n=1234567890123456');
    expect(redactPhones('+57 300 123')).toBe(PHONE_MASK);
    expect(redactPhones('+57 300 12')).toBe('+57 300 12');
  });
});

describe('secrets in logs', () => {
  it.each([
    ['connect postgres://audit:s3cr3t@db.internal:5432/chats failed', 'connect postgres://***@db.internal:5432/chats failed'],
    ['SMTP_URL=smtps://apikey:SG.abc.def@smtp.example.com:465', 'SMTP_URL=smtps://***@smtp.example.com:465'],
    ['Authorization: Bearer ya29.a0AfH6SMB-xyz_123', 'Authorization: Bearer ***'],
    [
      'GET https://storage.example/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam.gserviceaccount.com%2F20260901&X-Goog-Signature=ab12cd',
      'GET https://storage.example/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=***&X-Goog-Signature=***',
    ],
    ['PUT /upload/storage/v1/b/x/o?uploadType=resumable&upload_id=ADPycdt-secret 503', 'PUT /upload/storage/v1/b/x/o?uploadType=resumable&upload_id=*** 503'],
    ['key: -----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n', 'key: [private key]\n'],
  ])('masks the secret in %j', (text, masked) => {
    expect(redactSecrets(text)).toBe(masked);
    expect(redactText(text)).toBe(masked);
  });

  it('masks URL credentials before looking for addresses, so a password never shows as part of one', () => {
    expect(redactText('postgres://ana@example.com:pw@db/x')).toBe('postgres://***@db/x');
  });
});

describe('log values', () => {
  it('redacts fields by name at any depth, and text everywhere', () => {
    const record = {
      severity: 'ERROR',
      message: 'send to ana@example.com (+57 300 123 4567) failed',
      recipients: ['ana@example.com', '"Bruno B" <bruno@example.org>', 'a,b@example.com'],
      recipientCount: 3,
      requestedBy: { userId: 7, email: 'ops@merchant.test' },
      contact: { phone_number: '555', mobileNumber: 3001234567, name: 'Ana' },
      config: { headers: { Authorization: 'Bearer abc', 'X-Trace': 't-1' }, password: 'hunter2', privateKey: 'x' },
      err: { type: 'DatabaseError', message: 'duplicate key', detail: 'Key (email)=(ana@example.com) exists', stack: 'Error: at 3001234567' },
      rows: 1234567890,
      password: '',
      token: null,
    };
    expect(redactLogValue(record)).toEqual({
      severity: 'ERROR',
      message: `send to a***@example.com (${PHONE_MASK}) failed`,
      recipients: ['a***@example.com', '"Bruno B" <b***@example.org>', 'a,b***@example.com'],
      recipientCount: 3,
      requestedBy: { userId: 7, email: 'o***@merchant.test' },
      contact: { phone_number: REDACTED, mobileNumber: REDACTED, name: 'Ana' },
      config: { headers: { Authorization: REDACTED, 'X-Trace': 't-1' }, password: REDACTED, privateKey: REDACTED },
      err: { type: 'DatabaseError', message: 'duplicate key', detail: 'Key (email)=(a***@example.com) exists', stack: `Error: at ${PHONE_MASK}` },
      rows: 1234567890,
      password: '',
      token: null,
    });
  });

  it('masks what an e-mail field holds even when it is not shaped like an address', () => {
    expect(redactLogValue({ email: '"john doe"@example.com' })).toEqual({ email: '"***@example.com' });
    expect(redactLogValue({ email: 'not-an-address' })).toEqual({ email: 'not-an-address' });
  });

  it('keeps identifiers whole (long digit strings are ids there), but never an address in them', () => {
    const ids = {
      requestId: '3001234567',
      messageId: '17329187239812',
      generation: '1727712345678901',
      merchantId: '3001234567',
      agentIds: ['3001234567'],
      recipientHash: '300123456789',
      coalescedInto: '3001234567',
    };
    expect(redactLogValue(ids)).toEqual(ids);
    expect(redactLogValue({ requestId: 'ana@example.com' })).toEqual({ requestId: 'a***@example.com' });
    // A Message-ID this program made up from a digest is an id, not an address.
    expect(redactLogValue({ messageId: '<0123abcd.audit-export@b2chat.test>' })).toEqual({ messageId: '<0123abcd.audit-export@b2chat.test>' });
  });
});
