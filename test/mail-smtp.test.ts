import { afterEach, describe, expect, it } from 'vitest';
import { classifySmtpError, createMailTransport, parseMailFrom, parseSmtpUrl, type MailTransport } from '../jobs/mailer/smtp.js';
import { freePort, smtpReply, startSmtpServer, type TestSmtpOptions, type TestSmtpServer } from './support/smtp.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function server(options: TestSmtpOptions = {}): Promise<TestSmtpServer> {
  const started = await startSmtpServer(options);
  cleanup.push(() => started.close());
  return started;
}

function transport(url: string): MailTransport {
  const created = createMailTransport({ url, from: 'B2Chat <no-reply@b2chat.example>' });
  cleanup.push(() => created.close());
  return created;
}

const email = {
  to: 'ana@example.com',
  subject: 'Hola',
  text: 'texto',
  html: '<p>texto</p>',
  messageId: '<abc.audit-export@b2chat.example>',
  language: 'es',
};

async function failure(send: Promise<unknown>): Promise<unknown> {
  try {
    await send;
  } catch (error) {
    return error;
  }
  throw new Error('expected the send to fail');
}

describe('SMTP configuration', () => {
  it('accepts smtp:// and smtps:// URLs with a host', () => {
    expect(parseSmtpUrl('smtp://127.0.0.1:2525').port).toBe('2525');
    expect(parseSmtpUrl('smtps://user:secret@smtp.example.com').protocol).toBe('smtps:');
  });

  it.each([
    ['', 'Expected `SMTP_URL` to be an smtp:// or smtps:// URL, got ""'],
    ['localhost:25', 'Expected `SMTP_URL` to start with smtp:// or smtps://, got "localhost:25"'],
    ['https://user:secret@mail.example.com', 'Expected `SMTP_URL` to start with smtp:// or smtps://, got "https://***@mail.example.com"'],
    ['smtp://', 'Expected `SMTP_URL` to name a host, got "smtp://"'],
  ])('refuses SMTP_URL %j', (url, message) => {
    expect(() => parseSmtpUrl(url)).toThrow(new TypeError(message));
  });

  it('reads MAIL_FROM with or without a display name', () => {
    expect(parseMailFrom('no-reply@B2Chat.example')).toEqual({ address: 'no-reply@b2chat.example' });
    expect(parseMailFrom('B2Chat <no-reply@b2chat.example>')).toEqual({ name: 'B2Chat', address: 'no-reply@b2chat.example' });
    expect(parseMailFrom('"B2Chat Exports" <no-reply@b2chat.example>')).toEqual({ name: 'B2Chat Exports', address: 'no-reply@b2chat.example' });
  });

  it.each(['no-reply', 'B2Chat <no-reply>', 'a@b.example, c@d.example', ''])('refuses MAIL_FROM %j', (from) => {
    expect(() => parseMailFrom(from)).toThrow(
      new TypeError(`Expected \`MAIL_FROM\` to be an e-mail address or "Name <address>", got ${JSON.stringify(from)}`),
    );
  });

  it('refuses pool limits that are not whole numbers from 1 up', () => {
    const base = { url: 'smtp://127.0.0.1:25', from: 'no-reply@b2chat.example' };
    expect(() => createMailTransport({ ...base, maxConnections: 0 })).toThrow('Expected `maxConnections` to be a whole number from 1 up, got 0');
    expect(() => createMailTransport({ ...base, rateLimit: 2.5 })).toThrow('Expected `rateLimit` to be a whole number from 1 up, got 2.5');
  });
});

describe('mail transport', () => {
  it('sends one message to one recipient with the given Message-ID and says what the server answered', async () => {
    const smtp = await server();
    const acceptance = await transport(smtp.url).send(email);
    expect(acceptance).toEqual({ response: '250 Ok: queued as test-1', messageId: email.messageId });
    const [message] = smtp.messages;
    expect(message?.to).toEqual(['ana@example.com']);
    expect(message?.from).toBe('no-reply@b2chat.example');
    expect(message?.parsed.messageId).toBe(email.messageId);
    expect(message?.parsed.from?.value).toEqual([{ name: 'B2Chat', address: 'no-reply@b2chat.example' }]);
    expect(message?.parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(message?.parsed.headers.get('content-language')).toBe('es');
    expect(message?.parsed.text?.trim()).toBe('texto');
    expect(message?.parsed.html).toBe('<p>texto</p>');
  });
});

describe('classifySmtpError', () => {
  it('calls a refused connection transient', async () => {
    const error = await failure(transport(`smtp://127.0.0.1:${await freePort()}`).send(email));
    expect(error).toMatchObject({ code: expect.stringMatching(/^(ESOCKET|ECONNECTION)$/) });
    expect(classifySmtpError(error)).toBe('transient');
  });

  it('calls a 550 to RCPT TO permanent and a 451 transient', async () => {
    const smtp = await server({
      rcptTo: (address) =>
        address.startsWith('gone') ? smtpReply(550, 'No such user') : address.startsWith('later') ? smtpReply(451, 'Try again later') : undefined,
    });
    const mailer = transport(smtp.url);
    const gone = await failure(mailer.send({ ...email, to: 'gone@example.com' }));
    expect(gone).toMatchObject({ code: 'EENVELOPE', command: 'RCPT TO', responseCode: 550 });
    expect(classifySmtpError(gone)).toBe('permanent');
    const later = await failure(mailer.send({ ...email, to: 'later@example.com' }));
    expect(later).toMatchObject({ code: 'EENVELOPE', responseCode: 451 });
    expect(classifySmtpError(later)).toBe('transient');
    expect(smtp.messages).toHaveLength(0);
  });

  it('calls a 554 after DATA permanent', async () => {
    const smtp = await server({ data: () => smtpReply(554, 'Message rejected as spam') });
    const error = await failure(transport(smtp.url).send(email));
    expect(error).toMatchObject({ code: 'EMESSAGE', responseCode: 554 });
    expect(classifySmtpError(error)).toBe('permanent');
  });

  it('calls a 5xx to MAIL FROM transient: a refused sender is the mailer\'s problem, not the recipient\'s', async () => {
    const smtp = await server({ mailFrom: () => smtpReply(553, 'Sender not allowed') });
    const error = await failure(transport(smtp.url).send(email));
    expect(error).toMatchObject({ command: 'MAIL FROM', responseCode: 553 });
    expect(classifySmtpError(error)).toBe('transient');
  });

  it('calls anything that is not an SMTP error transient', () => {
    expect(classifySmtpError(undefined)).toBe('transient');
    expect(classifySmtpError('boom')).toBe('transient');
    expect(classifySmtpError(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }))).toBe('transient');
    expect(classifySmtpError(Object.assign(new Error('bad sequence'), { responseCode: 503, command: 'RCPT TO' }))).toBe('transient');
  });
});
