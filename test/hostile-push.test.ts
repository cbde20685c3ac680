import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessageHandler } from '../jobs/mailer/handler.js';
import { startPushServer, type PushServer, type PushServerOptions } from '../jobs/mailer/push-server.js';
import { memoryLogger } from './support/memory-logger.js';

/**
 * Hostile clients of `POST /pubsub/push`: every one is answered with the documented status (400,
 * 401, 408, 413) without the handler being called, and a connection that will not finish is
 * closed rather than read for ever or buffered.
 */

const servers: PushServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function serve(options: Partial<PushServerOptions> = {}) {
  const { logger, records } = memoryLogger();
  const received: string[] = [];
  const handler: MessageHandler = async (data) => {
    received.push(data.toString('utf8'));
    return 'ack';
  };
  const server = await startPushServer({ port: 0, host: '127.0.0.1', handler, logger, env: {}, ...options });
  servers.push(server);
  return { server, received, records };
}

const envelope = JSON.stringify({ message: { data: Buffer.from('{"x":1}').toString('base64'), messageId: '1' }, subscription: 's' });

async function post(server: PushServer, body: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(`${server.url}/pubsub/push`, { method: 'POST', headers, body });
  return { status: response.status, text: await response.text() };
}

/** A raw TCP connection to the server: what it answered, and when and whether it closed. */
function rawConnection(server: PushServer): { socket: Socket; answer: () => string; closed: Promise<number> } {
  const url = new URL(server.url);
  const socket = connect(Number(url.port), url.hostname);
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  socket.on('error', () => {});
  const started = performance.now();
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now() - started)));
  return { socket, answer: () => answer, closed };
}

/** Writes `chunk` until the server closes the connection or `limit` bytes went; returns the bytes written. */
async function flood(socket: Socket, chunk: Buffer, limit: number, closed: Promise<unknown>): Promise<number> {
  let written = 0;
  let open = true;
  void closed.then(() => (open = false));
  while (open && written < limit && !socket.destroyed) {
    const ok = socket.write(chunk);
    written += chunk.length;
    if (!ok) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed, sleep(2000)]);
  }
  return written;
}

describe('bodies that are no push', () => {
  it.each([
    ['empty', '', {}],
    ['not JSON', 'hello', { 'content-type': 'text/plain' }],
    ['an empty object', '{}', {}],
    ['a JSON array', '[]', {}],
    ['a JSON null', 'null', {}],
    ['100,000 nested arrays', '['.repeat(100_000) + ']'.repeat(100_000), {}],
    ['a form', 'message=1&messageId=2', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['multipart', '--b\r\nContent-Disposition: form-data; name="m"\r\n\r\nx\r\n--b--', { 'content-type': 'multipart/form-data; boundary=b' }],
    ['HTML', '<html><body>hi</body></html>', { 'content-type': 'text/html' }],
    ['__proto__ as the message', '{"__proto__":{"messageId":"1"}}', {}],
  ])('%s: 400, the handler not called', async (_name, body, headers) => {
    const { server, received } = await serve();
    const response = await post(server, body, headers);
    expect(response.status).toBe(400);
    expect(response.text).toMatch(/^not a Pub\/Sub push/);
    expect(response.text).not.toMatch(/\n\s+at /);
    expect(received).toEqual([]);
  });

  it('does not consult the Content-Type: a valid envelope is a push whatever it says (Pub/Sub decides what it sends)', async () => {
    const { server, received } = await serve();
    expect((await post(server, envelope, { 'content-type': 'text/plain' })).status).toBe(204);
    expect((await post(server, envelope, { 'content-type': 'image/png' })).status).toBe(204);
    expect(received).toHaveLength(2);
  });
});

describe('bodies over the limit', () => {
  it('answers 413 to a 50 MB chunked upload and stops reading it: the client cannot send more than a few MiB', async () => {
    const { server, received } = await serve();
    const { socket, answer, closed } = rawConnection(server);
    socket.write('POST /pubsub/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const payload = Buffer.alloc(64 * 1024, 'a');
    const chunk = Buffer.concat([Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n')]);
    const written = await flood(socket, chunk, 50 * 1024 * 1024, closed);
    await Promise.race([closed, sleep(5000)]);
    expect(answer()).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer()).toContain('body over 1048576 bytes');
    expect(written).toBeLessThan(16 * 1024 * 1024);
    expect(socket.destroyed || socket.readableEnded).toBe(true);
    expect(received).toEqual([]);
  });

  it('answers 413 to a declared 50 MB body before reading any of it', async () => {
    const { server } = await serve();
    const { socket, answer, closed } = rawConnection(server);
    socket.write(`POST /pubsub/push HTTP/1.1\r\nHost: x\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n`);
    const written = await flood(socket, Buffer.alloc(64 * 1024, 'a'), 50 * 1024 * 1024, closed);
    await Promise.race([closed, sleep(5000)]);
    expect(answer()).toMatch(/^HTTP\/1\.1 413 /);
    expect(written).toBeLessThan(16 * 1024 * 1024);
  });
});

describe('slow clients (slowloris)', () => {
  it('answers 408 and closes a connection whose body trickles in byte by byte past the request timeout', async () => {
    const { server, received, records } = await serve({ requestTimeoutMs: 500 });
    const { socket, answer, closed } = rawConnection(server);
    socket.write('POST /pubsub/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
    let open = true;
    void closed.then(() => (open = false));
    const trickle = (async () => {
      for (let index = 0; index < 200 && open; index += 1) {
        socket.write('a');
        await sleep(20);
      }
    })();
    const after = await Promise.race([closed, sleep(3000).then(() => Number.POSITIVE_INFINITY)]);
    await trickle;
    expect(after).toBeLessThan(2000);
    expect(answer()).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer()).toContain('request not received within 500 ms');
    expect(received).toEqual([]);
    expect(records.some((record) => record.msg.includes('Push request refused: request not received within 500 ms'))).toBe(true);
  });

  it('closes a connection whose headers trickle in past the request timeout', async () => {
    const { server, received } = await serve({ requestTimeoutMs: 500 });
    const { socket, closed } = rawConnection(server);
    socket.write('POST /pubsub/push HTTP/1.1\r\nHost: x\r\n');
    let open = true;
    void closed.then(() => (open = false));
    const trickle = (async () => {
      for (let index = 0; index < 200 && open; index += 1) {
        socket.write('X');
        await sleep(20);
      }
    })();
    const after = await Promise.race([closed, sleep(3000).then(() => Number.POSITIVE_INFINITY)]);
    await trickle;
    expect(after).toBeLessThan(2000);
    expect(received).toEqual([]);
  });

  it('takes the timeout from PUSH_REQUEST_TIMEOUT_MS, and names a bad one', async () => {
    const { server } = await serve({ env: { PUSH_REQUEST_TIMEOUT_MS: '400' } });
    const { socket, answer, closed } = rawConnection(server);
    socket.write('POST /pubsub/push HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    const after = await Promise.race([closed, sleep(3000).then(() => Number.POSITIVE_INFINITY)]);
    expect(after).toBeLessThan(2000);
    expect(answer()).toContain('request not received within 400 ms');
    const { logger } = memoryLogger();
    await expect(startPushServer({ port: 0, handler: async () => 'ack', logger, env: { PUSH_REQUEST_TIMEOUT_MS: 'soon' } })).rejects.toThrow(
      'Expected PUSH_REQUEST_TIMEOUT_MS to be a whole number of milliseconds, got "soon"',
    );
    await expect(startPushServer({ port: 0, handler: async () => 'ack', logger, env: {}, requestTimeoutMs: 0 })).rejects.toThrow(
      'Expected `requestTimeoutMs` to be a whole number from 100 to 3600000, got 0',
    );
  });

  it('does not count the handler\'s own time: a slow handler still answers', async () => {
    const { logger } = memoryLogger();
    const server = await startPushServer({
      port: 0,
      host: '127.0.0.1',
      logger,
      env: {},
      requestTimeoutMs: 300,
      handler: async () => {
        await sleep(1200);
        return 'ack';
      },
    });
    servers.push(server);
    expect((await post(server, envelope, { 'content-type': 'application/json' })).status).toBe(204);
  });
});

describe('authentication when a token is required', () => {
  it('answers 401 without a token, 403 for another identity, before reading a 50 MB body', async () => {
    const { server, received } = await serve({
      audience: 'aud',
      verifyToken: async (token) => {
        if (token === 'stranger') {
          const { ForbiddenTokenError } = await import('../jobs/mailer/push-server.js');
          throw new ForbiddenTokenError('token of "someone@example.com"');
        }
        if (token !== 'good') throw new Error('bad token');
      },
    });
    expect((await post(server, envelope)).status).toBe(401);
    expect((await post(server, envelope, { authorization: 'Bearer stranger' })).status).toBe(403);
    expect((await post(server, envelope, { authorization: 'Bearer\r\nX-Injected: 1' }).catch(() => ({ status: 400 }))).status).toBeGreaterThanOrEqual(400);
    const { socket, answer, closed } = rawConnection(server);
    socket.write(`POST /pubsub/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const payload = Buffer.alloc(64 * 1024, 'a');
    const chunk = Buffer.concat([Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n')]);
    const written = await flood(socket, chunk, 50 * 1024 * 1024, closed);
    await Promise.race([closed, sleep(5000)]);
    expect(answer()).toMatch(/^HTTP\/1\.1 401 /);
    expect(written).toBeLessThan(16 * 1024 * 1024);
    expect(received).toEqual([]);
  });
});
