import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MessageHandler, Verdict } from '../jobs/mailer/handler.js';
import { startPushServer, type PushServer, type PushServerOptions } from '../jobs/mailer/push-server.js';
import { memoryLogger } from './support/memory-logger.js';
import { startLocalIssuer, type LocalIssuer } from './support/oidc.js';

interface Received {
  data: string;
  attributes: Record<string, string>;
  messageId: string;
}

const servers: PushServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A push server on a free loopback port whose handler records calls and answers `verdict`. */
async function serve(
  options: Partial<PushServerOptions> & { verdict?: Verdict | (() => Promise<Verdict>) } = {},
): Promise<{ server: PushServer; received: Received[]; records: ReturnType<typeof memoryLogger>['records'] }> {
  const { logger, records } = memoryLogger();
  const received: Received[] = [];
  const { verdict = 'ack', ...rest } = options;
  const handler: MessageHandler = async (data, attributes, messageId) => {
    received.push({ data: data.toString('utf8'), attributes: { ...attributes }, messageId });
    return typeof verdict === 'function' ? await verdict() : verdict;
  };
  const server = await startPushServer({ port: 0, host: '127.0.0.1', handler, logger, env: {}, ...rest });
  servers.push(server);
  return { server, received, records };
}

function envelope(data: string, attributes: Record<string, string> = {}, messageId = '1001'): string {
  return JSON.stringify({
    message: { data: Buffer.from(data).toString('base64'), attributes, messageId, message_id: messageId, publishTime: '2026-11-01T12:00:00Z' },
    subscription: 'projects/p/subscriptions/mailer',
  });
}

async function push(server: PushServer, body: string | Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(`${server.url}/pubsub/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

/** Sends a body with node:http (chunked when `chunked`), tolerating the server closing the upload. */
async function rawPost(server: PushServer, body: Buffer, chunked: boolean): Promise<number> {
  const url = new URL(`${server.url}/pubsub/push`);
  return await new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: chunked ? {} : { 'content-length': body.length } },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.on('error', reject);
    if (chunked) {
      // Several writes without a length: the limit must hold while reading, not only on the header.
      for (let offset = 0; offset < body.length; offset += 64 * 1024) request.write(body.subarray(offset, offset + 64 * 1024));
      request.end();
    } else {
      request.end(body);
    }
  });
}

describe('push server routes', () => {
  it('answers GET /healthz with 200 ok, unknown paths with 404, GET on the push path with 405', async () => {
    const { server } = await serve();
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('ok');
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    const wrongMethod = await fetch(`${server.url}/pubsub/push`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
  });

  it('names the option and rule for a malformed option', async () => {
    const { logger } = memoryLogger();
    await expect(startPushServer({ port: 70_000, handler: async () => 'ack', logger })).rejects.toThrow(
      'Expected `port` to be a whole number from 0 to 65535, got 70000',
    );
    await expect(startPushServer({ port: 0, handler: async () => 'ack', logger, audience: ' ' })).rejects.toThrow(
      'Expected `audience` to be a non-empty string, got " "',
    );
  });
});

describe('push deliveries', () => {
  it('hands a wrapped envelope to the handler and answers 204 for ack', async () => {
    const { server, received } = await serve();
    const response = await push(server, envelope('{"requestId":"R1"}', { kind: 'conversations', requestId: 'R1' }, 'm-7'));
    expect(response.status).toBe(204);
    expect(received).toEqual([{ data: '{"requestId":"R1"}', attributes: { kind: 'conversations', requestId: 'R1' }, messageId: 'm-7' }]);
  });

  it('takes the snake_case message_id and a message without data', async () => {
    const { server, received } = await serve();
    const body = JSON.stringify({ message: { message_id: '55', attributes: { kind: 'x' } }, subscription: 's' });
    expect((await push(server, body)).status).toBe(204);
    expect(received).toEqual([{ data: '', attributes: { kind: 'x' }, messageId: '55' }]);
  });

  it('hands an unwrapped push to the handler: raw body, metadata and attributes from headers', async () => {
    const { server, received } = await serve();
    const response = await push(server, 'raw {"requestId":"R2"}', {
      'content-type': 'application/x-www-form-urlencoded',
      'x-goog-pubsub-message-id': '2002',
      'x-goog-pubsub-publish-time': '2026-11-01T12:00:00Z',
      'x-goog-pubsub-subscription-name': 'projects/p/subscriptions/mailer-unwrapped',
      kind: 'conversations',
      requestid: 'R2', // Lower-cased on the way, as HTTP/2 hops do: still the requestId attribute.
      'x-cloud-trace-context': 'abc/1',
    });
    expect(response.status).toBe(204);
    expect(received).toEqual([{ data: 'raw {"requestId":"R2"}', attributes: { kind: 'conversations', requestId: 'R2' }, messageId: '2002' }]);
  });

  it('answers 503 for nack, a throwing handler and a non-verdict, logging the failures', async () => {
    const nacking = await serve({ verdict: 'nack' });
    expect((await push(nacking.server, envelope('a'))).status).toBe(503);

    const throwing = await serve({
      verdict: async () => {
        throw new Error('SMTP is down');
      },
    });
    expect((await push(throwing.server, envelope('b'))).status).toBe(503);
    expect(throwing.records).toContainEqual(expect.objectContaining({ level: 50, messageId: '1001', err: expect.objectContaining({ message: 'SMTP is down' }) }));

    const confused = await serve({ verdict: async () => 'maybe' as Verdict });
    expect((await push(confused.server, envelope('c'))).status).toBe(503);
    expect(confused.records.some((record) => record.msg.includes('returned "maybe"'))).toBe(true);
  });

  it('refuses with 400 what is no Pub/Sub push at all, logging why, without calling the handler', async () => {
    const { server, received, records } = await serve();
    const cases: [string, string][] = [
      ['not json', 'neither a JSON envelope nor an x-goog-pubsub-message-id header'],
      ['[1,2]', 'expected a JSON object'],
      ['{"subscription":"s"}', 'expected `message` to be an object'],
      ['{"message":{"data":"aGk="}}', 'expected `message.messageId` to be a non-empty string'],
      ['{"message":{"messageId":"1","data":"not base64!"}}', 'expected `message.data` to be base64'],
      ['{"message":{"messageId":"1","attributes":{"kind":3}}}', 'expected attribute "kind" to be a string'],
    ];
    for (const [body, reason] of cases) {
      const response = await push(server, body);
      expect(response.status, body).toBe(400);
      expect(await response.text()).toContain(reason);
      expect(records.at(-1)?.msg, body).toContain(reason);
    }
    expect(received).toEqual([]);
  });

  it('refuses bodies over the limit with 413, by declared length and while reading a chunked body', async () => {
    const small = await serve({ maxBodyBytes: 1024 });
    expect(await rawPost(small.server, Buffer.alloc(1025, 'a'), false)).toBe(413);
    expect(await rawPost(small.server, Buffer.alloc(300 * 1024, 'a'), true)).toBe(413);
    expect((await push(small.server, envelope('x'.repeat(500)))).status).toBe(204);

    const standard = await serve();
    expect(await rawPost(standard.server, Buffer.alloc(1024 * 1024 + 1, 'a'), false)).toBe(413);
    expect(small.received).toHaveLength(1);
    expect(standard.received).toEqual([]);
  });
});

describe('push authentication', () => {
  let issuer: LocalIssuer;
  const audience = 'https://mailer.example.run.app/pubsub/push';
  const pusher = 'pubsub-push@audit-export.iam.gserviceaccount.com';

  beforeAll(async () => {
    issuer = await startLocalIssuer();
  });
  afterAll(async () => {
    await issuer?.close();
  });

  async function authenticated(): ReturnType<typeof serve> {
    return await serve({
      env: { PUSH_AUDIENCE: audience, PUSH_OIDC_CERTS_URL: issuer.certsUrl, PUSH_SERVICE_ACCOUNT: pusher },
    });
  }

  it('accepts a valid Google OIDC token for the audience from the push service account', async () => {
    const { server, received } = await authenticated();
    const token = issuer.sign({ aud: audience, email: pusher, email_verified: true, sub: '1234' });
    expect((await push(server, envelope('ok'), { authorization: `Bearer ${token}` })).status).toBe(204);
    expect(received).toHaveLength(1);
  });

  it('refuses a missing, malformed, mis-addressed, expired or forged token with 401, before the handler', async () => {
    const { server, received, records } = await authenticated();
    const fetchesBefore = issuer.fetches();
    const now = Math.floor(Date.now() / 1000);
    const good = { aud: audience, email: pusher, email_verified: true };
    const cases: [string, Record<string, string>, string][] = [
      ['missing header', {}, 'no Authorization header'],
      ['not bearer', { authorization: 'Basic dXNlcjpwYXNz' }, 'not a Bearer token'],
      ['garbage', { authorization: 'Bearer abc' }, 'token refused'],
      ['wrong audience', { authorization: `Bearer ${issuer.sign({ ...good, aud: 'https://elsewhere.example' })}` }, 'Wrong recipient'],
      ['expired', { authorization: `Bearer ${issuer.sign({ ...good, iat: now - 7200, exp: now - 3600 })}` }, 'Token used too late'],
      ['bad signature', { authorization: `Bearer ${issuer.sign(good, { key: issuer.strangerKey })}` }, 'Invalid token signature'],
      ['unknown key', { authorization: `Bearer ${issuer.sign(good, { kid: 'other-key' })}` }, 'No pem found for envelope'],
      ['other issuer', { authorization: `Bearer ${issuer.sign({ ...good, iss: 'https://evil.example' })}` }, 'Invalid issuer'],
    ];
    for (const [name, headers, reason] of cases) {
      const response = await push(server, envelope('no'), headers);
      expect(response.status, name).toBe(401);
      expect(response.headers.get('www-authenticate'), name).toBe('Bearer');
      expect(records.at(-1)?.msg, name).toContain(reason);
    }
    expect(received).toEqual([]);
    // The reason is logged; the token itself never is.
    const tokenPart = issuer.sign(good).split('.')[1] ?? '';
    expect(JSON.stringify(records)).not.toContain(tokenPart.slice(0, 40));
    expect(issuer.fetches() - fetchesBefore).toBe(1); // Cached as their Cache-Control says.
  });

  it('refuses with 403 a valid token of another identity', async () => {
    const { server, received } = await authenticated();
    const stranger = issuer.sign({ aud: audience, email: 'someone@example.com', email_verified: true });
    const unverified = issuer.sign({ aud: audience, email: pusher, email_verified: false });
    expect((await push(server, envelope('no'), { authorization: `Bearer ${stranger}` })).status).toBe(403);
    expect((await push(server, envelope('no'), { authorization: `Bearer ${unverified}` })).status).toBe(403);
    expect(received).toEqual([]);
  });

  it('uses an injected verifier with the token and the audience', async () => {
    const calls: [string, string][] = [];
    const { server, received } = await serve({
      audience: 'aud-1',
      verifyToken: async (token, expected) => {
        calls.push([token, expected]);
        if (token !== 'good.token.sig') throw new Error('nope');
      },
    });
    expect((await push(server, envelope('a'), { authorization: 'Bearer good.token.sig' })).status).toBe(204);
    expect((await push(server, envelope('b'), { authorization: 'Bearer bad.token.sig' })).status).toBe(401);
    expect(calls).toEqual([
      ['good.token.sig', 'aud-1'],
      ['bad.token.sig', 'aud-1'],
    ]);
    expect(received).toHaveLength(1);
  });
});

describe('push server close', () => {
  it('stops accepting, lets requests in flight finish, then resolves', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started!: () => void;
    const handling = new Promise<void>((resolve) => {
      started = resolve;
    });
    const { server } = await serve({
      verdict: async () => {
        started();
        await released;
        return 'ack';
      },
    });
    const inFlight = push(server, envelope('slow'));
    await handling;
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });
    await sleep(100);
    expect(closed).toBe(false);
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    release();
    expect((await inFlight).status).toBe(204);
    await closing;
    expect(closed).toBe(true);
  });

  it('drops requests still running after the close timeout', async () => {
    let started!: () => void;
    const handling = new Promise<void>((resolve) => {
      started = resolve;
    });
    const { server, records } = await serve({
      closeTimeoutMs: 300,
      verdict: async () => {
        started();
        await sleep(30_000);
        return 'ack';
      },
    });
    const inFlight = push(server, envelope('stuck')).then(
      (response) => response.status,
      () => 'dropped',
    );
    await handling;
    const before = Date.now();
    await server.close();
    expect(Date.now() - before).toBeLessThan(2_000);
    expect(await inFlight).toBe('dropped');
    expect(records.some((record) => record.msg.includes('still running after 300 ms'))).toBe(true);
  });
});
