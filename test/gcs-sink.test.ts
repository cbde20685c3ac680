import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CRC32C, type Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverStream } from '../pipeline/deliver.js';
import { FileOutputTarget } from '../sinks/file.js';
import { createStorageClient, GcsOutputTarget, gcsObjectName, MAX_SIGNED_URL_SECONDS, parseGcsUri, signReadUrl } from '../sinks/gcs.js';
import type { OutputTarget, StoredObject } from '../sinks/output.js';
import { temporaryDirectory } from './support/export.js';
import {
  createTestServiceAccount,
  crc32cBase64,
  crc32cUpdate,
  startFakeGcs,
  startFakeGcsProcess,
  type FakeGcs,
  type TestServiceAccount,
} from './support/fake-gcs.js';

const BUCKET = 'audit-exports';
const PREFIX = 'exports/merchant-42';
const MiB = 2 ** 20;
const ZIP = { contentType: 'application/zip', metadata: {} } as const;

/** `bytes` streamed in 64 KiB chunks, read only as fast as the pipeline pulls them. */
function sourceOf(bytes: Buffer, options: { failAt?: number; onRead?: (read: number) => void } = {}): Readable {
  return Readable.from(
    (async function* () {
      for (let offset = 0; offset < bytes.length; offset += 64 * 1024) {
        if (options.failAt !== undefined && offset >= options.failAt) throw new Error('source broke');
        const chunk = bytes.subarray(offset, offset + 64 * 1024);
        options.onRead?.(offset + chunk.length);
        yield chunk;
      }
    })(),
  );
}

/** `size` bytes of one repeated 64 KiB block, made as they are read (for sizes not worth holding). */
function generatedSource(size: number, onRead?: (read: number) => void): Readable {
  const block = randomBytes(64 * 1024);
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < size; offset += block.length) {
        onRead?.(offset + block.length);
        yield block;
      }
    })(),
  );
}

type Outcome = { readonly ok: true; readonly stored: StoredObject } | { readonly ok: false; readonly error: Error };

async function outcomeOf(delivery: Promise<StoredObject>): Promise<Outcome> {
  try {
    return { ok: true, stored: await delivery };
  } catch (error) {
    return { ok: false, error: error as Error };
  }
}

const originalEnvironment = { ...process.env };
let fake: FakeGcs;
let account: TestServiceAccount;
let storage: Storage;
let target: GcsOutputTarget;
let names = 0;

/** A name no other test uses. */
function uniqueName(label: string): string {
  names += 1;
  return `${label}-${names}.zip`;
}

function objectOf(name: string) {
  return fake.object(BUCKET, `${PREFIX}/${name}`);
}

/** The requests to the upload sessions of `name`: other tests' late requests do not count. */
function requestsOf(name: string) {
  const ids = new Set(sessionsOf(name).map((session) => session.id));
  return fake.requests.filter((request) => ids.has(new URL(request.url, fake.url).searchParams.get('upload_id') ?? ''));
}

function sessionsOf(name: string) {
  return [...fake.sessions.values()].filter((session) => session.name === `${PREFIX}/${name}`);
}

/** The invariant every failed delivery must keep: no object, the session cancelled or failed, no request left running. */
async function expectNothingLeft(name: string): Promise<void> {
  expect(objectOf(name)).toBeUndefined();
  for (const session of sessionsOf(name)) expect(['cancelled', 'failed', 'finalized']).toContain(session.state);
  // A request cut by the client may take a moment to be noticed on the server side.
  for (let wait = 0; wait < 50 && fake.uploadsInProgress() > 0; wait++) await sleep(20);
  expect(fake.uploadsInProgress()).toBe(0);
}

beforeAll(async () => {
  delete process.env.STORAGE_EMULATOR_HOST;
  fake = await startFakeGcs({ buckets: [BUCKET] });
  account = await createTestServiceAccount(fake, await temporaryDirectory());
  // As in production, Application Default Credentials find the key through the environment.
  process.env.GOOGLE_APPLICATION_CREDENTIALS = account.keyFile;
  storage = createStorageClient({
    GCS_API_ENDPOINT: fake.url,
    GOOGLE_APPLICATION_CREDENTIALS: account.keyFile,
    GOOGLE_CLOUD_PROJECT: account.projectId,
  });
  target = new GcsOutputTarget(storage, { bucket: BUCKET, prefix: PREFIX });
});

afterAll(async () => {
  for (const key of ['GOOGLE_APPLICATION_CREDENTIALS', 'STORAGE_EMULATOR_HOST']) {
    if (originalEnvironment[key] === undefined) delete process.env[key];
    else process.env[key] = originalEnvironment[key];
  }
  await fake.close();
});

describe('gs:// sink', () => {
  it('streams a multi-MB export through deliverStream into one object under the prefix, in one upload request', async () => {
    const name = uniqueName('large');
    const bytes = randomBytes(12 * MiB + 12345);
    const object = await target.open({ name, ...ZIP });
    const stored = await deliverStream(sourceOf(bytes), [], object, new AbortController().signal);

    const fakeObject = objectOf(name);
    expect(stored).toEqual({
      uri: `gs://${BUCKET}/${PREFIX}/${name}`,
      bytes: bytes.length,
      gcs: { bucket: BUCKET, object: `${PREFIX}/${name}`, generation: fakeObject?.generation },
      metadata: {},
    });
    expect(stored.gcs?.generation).toMatch(/^\d+$/);
    // No chunkSize: after asking the session where to start, the whole object went in one streamed PUT.
    expect(requestsOf(name).map((request) => `${request.kind} ${request.headers['content-range']}`)).toEqual(['status bytes */*', 'upload bytes 0-*/*']);
    const [downloaded] = await storage.bucket(BUCKET).file(`${PREFIX}/${name}`).download();
    expect(downloaded.equals(bytes)).toBe(true);
  });

  it('stores the content type, the custom metadata and an attachment Content-Disposition', async () => {
    const name = uniqueName('described');
    const metadata = { requestId: 'req-1', kind: 'conversations', merchantId: '42', rows: '1234' };
    const object = await target.open({ name, contentType: 'application/zip', metadata });
    const stored = await deliverStream(Readable.from([Buffer.from('PK zip bytes')]), [], object, new AbortController().signal);
    expect(stored.metadata).toEqual(metadata);
    const fakeObject = objectOf(name);
    expect(fakeObject?.contentType).toBe('application/zip');
    expect(fakeObject?.contentDisposition).toBe(`attachment; filename="${name}"`);
    expect(fakeObject?.metadata).toEqual(metadata);
  });

  it('shows nothing until commit: the stream finishing does not finalize the upload', async () => {
    const name = uniqueName('held');
    const object = await target.open({ name, ...ZIP });
    object.stream.end(randomBytes(3 * MiB));
    await finished(object.stream);
    await sleep(100);
    expect(objectOf(name)).toBeUndefined();
    const stored = await object.commit();
    expect(objectOf(name)?.generation).toBe(stored.gcs?.generation);
    await object.discard(); // after a commit: harmless, the object stays
    expect(objectOf(name)?.generation).toBe(stored.gcs?.generation);
  });

  it('commits an empty object', async () => {
    const name = uniqueName('empty');
    const object = await target.open({ name, ...ZIP });
    object.stream.end();
    const stored = await object.commit();
    expect(stored.bytes).toBe(0);
    expect(objectOf(name)?.bytes.length).toBe(0);
  });

  it('never overwrites: opening a name that exists fails at once and leaves the first object untouched', async () => {
    const name = uniqueName('taken');
    const first = await target.open({ name, ...ZIP });
    first.stream.end('first');
    const stored = await first.commit();
    await expect(target.open({ name, ...ZIP })).rejects.toThrow(`gs://${BUCKET}/${PREFIX}/${name} already exists; exports never overwrite an object`);
    expect(objectOf(name)?.bytes.toString()).toBe('first');
    expect(objectOf(name)?.generation).toBe(stored.gcs?.generation);
  });

  it('never overwrites: a name taken while the upload ran fails the commit, saying it exists, and the other object stays', async () => {
    const name = uniqueName('raced');
    const first = await target.open({ name, ...ZIP });
    const second = await target.open({ name, ...ZIP });
    first.stream.end('first');
    const stored = await first.commit();
    second.stream.end('second');
    await expect(second.commit()).rejects.toThrow(/already exists/);
    await second.discard();
    expect(objectOf(name)?.bytes.toString()).toBe('first');
    expect(objectOf(name)?.generation).toBe(stored.gcs?.generation);
  });

  it('leaves no object when a delivery is aborted mid-stream', async () => {
    const name = uniqueName('aborted');
    const controller = new AbortController();
    const object = await target.open({ name, ...ZIP });
    const source = sourceOf(randomBytes(24 * MiB), {
      onRead: (read) => {
        if (read >= 6 * MiB) controller.abort();
      },
    });
    await expect(deliverStream(source, [], object, controller.signal)).rejects.toThrow(/abort/i);
    await expectNothingLeft(name);
    expect(sessionsOf(name).map((session) => session.state)).toEqual(['cancelled']);
  });

  it('leaves no object when a delivery is aborted at any point around its start', async () => {
    const abortWays: ((abort: () => void) => void)[] = [
      (abort) => abort(),
      (abort) => queueMicrotask(abort),
      (abort) => process.nextTick(abort),
      (abort) => setImmediate(abort),
      (abort) => setTimeout(abort, 5),
    ];
    const used: string[] = [];
    for (let round = 0; round < 5; round++) {
      for (const schedule of abortWays) {
        const name = uniqueName('early-abort');
        used.push(name);
        const controller = new AbortController();
        const object = await target.open({ name, ...ZIP });
        schedule(() => controller.abort());
        await expect(deliverStream(generatedSource(64 * MiB), [], object, controller.signal)).rejects.toThrow(/abort/i);
      }
    }
    for (const name of used) await expectNothingLeft(name);
    // The client carries on with a destroyed upload for a while (a status query, a PUT, retries
    // after 1 to 2 s); against a cancelled session none of that can create the object.
    await sleep(3000);
    for (const name of used) await expectNothingLeft(name);
  });

  it('leaves no object when the source fails', async () => {
    const name = uniqueName('broken-source');
    const object = await target.open({ name, ...ZIP });
    const delivery = deliverStream(sourceOf(randomBytes(8 * MiB), { failAt: 3 * MiB }), [], object, new AbortController().signal);
    await expect(delivery).rejects.toThrow('source broke');
    await expectNothingLeft(name);
  });

  it('leaves no object when discarded right after opening, and discarding twice is harmless', async () => {
    const name = uniqueName('discarded');
    const object = await target.open({ name, ...ZIP });
    await object.discard();
    await object.discard();
    await expectNothingLeft(name);
    expect(sessionsOf(name).map((session) => session.state)).toEqual(['cancelled']);
    await expect(object.commit()).rejects.toThrow(/already committed or discarded/);
  });

  it('resumes the upload after a 503 when the server kept every byte: the object is complete and correct', async () => {
    const name = uniqueName('resumed');
    const bytes = randomBytes(8 * MiB);
    fake.injectUploadFault({ kind: '503' });
    const object = await target.open({ name, ...ZIP });
    const stored = await deliverStream(sourceOf(bytes), [], object, new AbortController().signal);
    expect(stored.bytes).toBe(bytes.length);
    expect(objectOf(name)?.bytes.equals(bytes)).toBe(true);
    // The first PUT got the 503; the client asked for the persisted range and finished with an empty PUT.
    expect(requestsOf(name).map((request) => `${request.kind} ${request.headers['content-range']}`)).toEqual([
      'status bytes */*',
      'upload bytes 0-*/*',
      'status bytes */*',
      `upload bytes ${bytes.length}-*/*`,
    ]);
  });

  it('fails and leaves no object when the connection drops mid-upload (bytes in flight are lost and cannot be replayed)', async () => {
    const name = uniqueName('dropped');
    const bytes = randomBytes(16 * MiB);
    fake.injectUploadFault({ kind: 'drop', afterBytes: 2 * MiB });
    const object = await target.open({ name, ...ZIP });
    const outcome = await outcomeOf(deliverStream(sourceOf(bytes), [], object, new AbortController().signal));
    if (outcome.ok) {
      expect(objectOf(name)?.bytes.equals(bytes)).toBe(true);
    } else {
      // Without chunkSize the client keeps only its last chunk for replay; the server lost more.
      expect(outcome.error.message).toMatch(/offset is lower than the number of bytes written/);
      await expectNothingLeft(name);
    }
  });

  it('fails and leaves no object when a 503 follows the loss of part of the body', async () => {
    const name = uniqueName('partial-503');
    fake.injectUploadFault({ kind: '503', persistBytes: MiB });
    const object = await target.open({ name, ...ZIP });
    const outcome = await outcomeOf(deliverStream(sourceOf(randomBytes(8 * MiB)), [], object, new AbortController().signal));
    expect(outcome.ok).toBe(false);
    await expectNothingLeft(name);
  });

  it('deletes the object whose final response was lost: the client gives up, and only that generation goes', async () => {
    const name = uniqueName('lost-response');
    fake.injectUploadFault({ kind: 'drop-response' });
    const deletesBefore = fake.requests.filter((request) => request.kind === 'delete').length;
    const object = await target.open({ name, ...ZIP });
    const outcome = await outcomeOf(deliverStream(sourceOf(randomBytes(4 * MiB)), [], object, new AbortController().signal));
    expect(outcome.ok).toBe(false);
    const [session] = sessionsOf(name);
    expect(session?.state).toBe('finalized');
    await expectNothingLeft(name);
    const deletes = fake.requests.filter((request) => request.kind === 'delete').slice(deletesBefore);
    expect(deletes).toHaveLength(1);
    const query = new URL(deletes[0]?.url ?? '', fake.url).searchParams;
    expect(query.get('generation')).toBe(session?.object?.generation);
    expect(query.get('ifGenerationMatch')).toBe(session?.object?.generation);
  });

  it('passes backpressure on: while the upload is stalled the source is not read ahead', async () => {
    const name = uniqueName('stalled');
    const size = 96 * MiB;
    let read = 0;
    const resume = fake.pauseUploads();
    const object = await target.open({ name, ...ZIP });
    const delivery = deliverStream(generatedSource(size, (bytes) => (read = bytes)), [], object, new AbortController().signal);
    let before = -1;
    while (read !== before) {
      before = read;
      await sleep(300);
    }
    // What is read ahead sits in socket and stream buffers (about 4 MiB here), not the export.
    expect(read).toBeLessThan(16 * MiB);
    resume();
    const stored = await delivery;
    expect(stored.bytes).toBe(size);
  });

  it('finds a committed object with its metadata, and nothing under a missing name', async () => {
    const name = uniqueName('found');
    const object = await target.open({ name, contentType: 'application/zip', metadata: { requestId: 'r-9' } });
    object.stream.end('bytes');
    const stored = await object.commit();
    expect(await target.find(name)).toEqual(stored);
    expect(await target.find(uniqueName('missing'))).toBeUndefined();
  });

  it('accepts only plain file names', async () => {
    for (const name of ['', '../x.zip', 'a/b.zip', '.hidden', 'line\nbreak.zip']) {
      await expect(target.open({ name, ...ZIP })).rejects.toThrow(TypeError);
      await expect(target.find(name)).rejects.toThrow(TypeError);
    }
    const deep = new GcsOutputTarget(storage, { bucket: BUCKET, prefix: 'p'.repeat(700) });
    await expect(deep.open({ name: `${'é'.repeat(200)}.zip`, ...ZIP })).rejects.toThrow(/at most 1024 bytes/);
  });

  it('names objects under the prefix without double slashes', () => {
    expect(gcsObjectName({ bucket: BUCKET, prefix: '' }, 'a.zip')).toBe('a.zip');
    expect(gcsObjectName({ bucket: BUCKET, prefix: 'x/y' }, 'a.zip')).toBe('x/y/a.zip');
    expect(new GcsOutputTarget(storage, { bucket: BUCKET, prefix: '' }).description).toBe(`gs://${BUCKET}/`);
    expect(target.description).toBe(`gs://${BUCKET}/${PREFIX}/`);
    expect(() => new GcsOutputTarget(storage, { bucket: 'Bad_Bucket', prefix: '' })).toThrow(TypeError);
    expect(() => new GcsOutputTarget(storage, { bucket: BUCKET, prefix: '/x/' })).toThrow(TypeError);
  });
});

describe('signReadUrl', () => {
  let stored: StoredObject;
  let bytes: Buffer;

  beforeAll(async () => {
    bytes = randomBytes(MiB + 17);
    const object = await target.open({ name: uniqueName('linked'), ...ZIP });
    stored = await deliverStream(sourceOf(bytes), [], object, new AbortController().signal);
  });

  function reference() {
    const gcs = stored.gcs;
    if (gcs === undefined) throw new Error('expected a Cloud Storage object');
    return gcs;
  }

  it('signs a 7-day link with X-Goog-Expires=604800 exactly, at the configured endpoint, that downloads the object', async () => {
    // Every millisecond offset: two clock readings would give 604799 for most of them.
    for (let millisecond = 0; millisecond < 1000; millisecond += 37) {
      const now = new Date(Math.floor(Date.now() / 1000) * 1000 + millisecond);
      const link = await signReadUrl(storage, reference(), MAX_SIGNED_URL_SECONDS, now);
      const url = new URL(link.url);
      expect(url.searchParams.get('X-Goog-Expires')).toBe('604800');
      expect(link.expiresAt.getTime()).toBe(Math.floor(now.getTime() / 1000) * 1000 + 604_800_000);
    }
    const link = await signReadUrl(storage, reference(), MAX_SIGNED_URL_SECONDS);
    const url = new URL(link.url);
    expect(url.origin).toBe(fake.url);
    expect(url.pathname).toBe(`/${BUCKET}/${reference().object}`);
    expect(url.searchParams.get('generation')).toBe(reference().generation);
    expect(url.searchParams.get('X-Goog-Credential')).toMatch(new RegExp(`^${account.clientEmail}/\\d{8}/auto/storage/goog4_request$`));
    const response = await fetch(link.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="${reference().object.split('/').pop()}"`);
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('is refused with 403 when the signature or the path is tampered with', async () => {
    const { url } = await signReadUrl(storage, reference(), 3600);
    const tampered = new URL(url);
    const signature = tampered.searchParams.get('X-Goog-Signature') ?? '';
    tampered.searchParams.set('X-Goog-Signature', `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`);
    const refused = await fetch(tampered);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('SignatureDoesNotMatch');

    const elsewhere = new URL(url);
    elsewhere.pathname = elsewhere.pathname.replace(/[^/]+$/, 'other.zip');
    expect((await fetch(elsewhere)).status).toBe(403);
    const longer = new URL(url);
    longer.searchParams.set('X-Goog-Expires', '7200');
    expect((await fetch(longer)).status).toBe(403);
  });

  it('is refused with 403 once expired on the server clock', async () => {
    const now = new Date();
    const { url } = await signReadUrl(storage, reference(), 60, now);
    const signedAt = Math.floor(now.getTime() / 1000) * 1000;
    try {
      fake.clockSkewMs = signedAt + 59_000 - Date.now();
      expect((await fetch(url)).status).toBe(200);
      fake.clockSkewMs = signedAt + 61_000 - Date.now();
      const expired = await fetch(url);
      expect(expired.status).toBe(403);
      expect(await expired.text()).toContain('ExpiredToken');

      const week = await signReadUrl(storage, reference(), MAX_SIGNED_URL_SECONDS, now);
      fake.clockSkewMs = signedAt + (MAX_SIGNED_URL_SECONDS - 1) * 1000 - Date.now();
      expect((await fetch(week.url)).status).toBe(200);
      fake.clockSkewMs = signedAt + (MAX_SIGNED_URL_SECONDS + 1) * 1000 - Date.now();
      expect((await fetch(week.url)).status).toBe(403);
    } finally {
      fake.clockSkewMs = 0;
    }
  });

  it('rejects durations outside 1 to 604800 seconds, invalid dates and generations with a TypeError', async () => {
    for (const seconds of [0, -1, 1.5, MAX_SIGNED_URL_SECONDS + 1, Number.NaN]) {
      await expect(signReadUrl(storage, reference(), seconds)).rejects.toThrow(/Expected seconds to be a whole number from 1 to 604800/);
    }
    await expect(signReadUrl(storage, reference(), 60, new Date(Number.NaN))).rejects.toThrow(TypeError);
    await expect(signReadUrl(storage, { ...reference(), generation: '12a' }, 60)).rejects.toThrow(/decimal string/);
  });
});

describe('createStorageClient', () => {
  async function roundTrip(client: Storage): Promise<void> {
    const sink = new GcsOutputTarget(client, { bucket: BUCKET, prefix: 'client-check' });
    const name = uniqueName('client');
    const object = await sink.open({ name, ...ZIP });
    object.stream.end('via the configured endpoint');
    const stored = await object.commit();
    expect(await sink.find(name)).toEqual(stored);
    expect(fake.object(BUCKET, `client-check/${name}`)?.bytes.toString()).toBe('via the configured endpoint');
  }

  it('reaches the endpoint named by GCS_API_ENDPOINT, without credentials, with the project from GOOGLE_CLOUD_PROJECT', async () => {
    const client = createStorageClient({ GCS_API_ENDPOINT: `${fake.url}/`, GOOGLE_CLOUD_PROJECT: 'audit-export-p' });
    expect(client.apiEndpoint).toBe(fake.url);
    expect(client.projectId).toBe('audit-export-p');
    await roundTrip(client);
    expect(fake.requests.at(-1)?.url).toMatch(/^\/storage\/v1\/b\//);
  });

  it('reaches the emulator named by STORAGE_EMULATOR_HOST, as fake-gcs-server setups do', async () => {
    process.env.STORAGE_EMULATOR_HOST = fake.url;
    try {
      const client = createStorageClient();
      await roundTrip(client);
      // The client then uses the variable as its JSON API base URL as is: no /storage/v1.
      expect(fake.requests.at(-1)?.url).toMatch(/^\/b\//);
      const link = await signReadUrl(client, { bucket: BUCKET, object: 'client-check/nothing.zip' }, 60);
      expect(new URL(link.url).origin).toBe(fake.url);
      expect(() => createStorageClient({ GCS_API_ENDPOINT: 'http://127.0.0.1:1' })).toThrow(/agree with STORAGE_EMULATOR_HOST/);
    } finally {
      delete process.env.STORAGE_EMULATOR_HOST;
    }
    await roundTrip(createStorageClient({ STORAGE_EMULATOR_HOST: fake.url }));
  });

  it('rejects an endpoint that is not an http(s) URL without a path, naming the variable', () => {
    for (const value of ['127.0.0.1:4443', 'ftp://x', 'http://h/storage/v1', 'not a url']) {
      expect(() => createStorageClient({ GCS_API_ENDPOINT: value })).toThrow(`Expected GCS_API_ENDPOINT to be an http(s) URL without a path`);
      expect(() => createStorageClient({ STORAGE_EMULATOR_HOST: value })).toThrow(`Expected STORAGE_EMULATOR_HOST to be an http(s) URL`);
    }
  });

  it('keeps authentication for endpoints on googleapis.com (regional, private)', () => {
    expect(createStorageClient({ GCS_API_ENDPOINT: 'https://storage.europe-west3.rep.googleapis.com' }).useAuthWithCustomEndpoint).toBe(true);
    expect(createStorageClient({ GCS_API_ENDPOINT: fake.url }).useAuthWithCustomEndpoint).toBe(false);
  });
});

describe('parseGcsUri', () => {
  it('takes a bucket and an optional folder prefix', () => {
    expect(parseGcsUri('gs://audit-exports')).toEqual({ bucket: 'audit-exports', prefix: '' });
    expect(parseGcsUri('gs://audit-exports/')).toEqual({ bucket: 'audit-exports', prefix: '' });
    expect(parseGcsUri('gs://audit-exports/exports')).toEqual({ bucket: 'audit-exports', prefix: 'exports' });
    expect(parseGcsUri('gs://audit-exports/exports/2026/')).toEqual({ bucket: 'audit-exports', prefix: 'exports/2026' });
    expect(parseGcsUri('gs://my.bucket_1/a b')).toEqual({ bucket: 'my.bucket_1', prefix: 'a b' });
    expect(parseGcsUri('file://./exports')).toBeUndefined();
    expect(parseGcsUri('s3://bucket/x')).toBeUndefined();
  });

  it('rejects invalid bucket names and prefixes with a TypeError naming the rule', () => {
    const cases: [string, RegExp][] = [
      ['gs://', /bucket name is required/],
      ['gs:///exports', /bucket name is required/],
      ['gs://ab', /3 to 63 characters/],
      [`gs://${'a'.repeat(64)}`, /3 to 63 characters/],
      ['gs://Audit-Exports', /lowercase letters/],
      ['gs://-bucket', /starting and ending with a letter or digit/],
      ['gs://bucket-', /starting and ending with a letter or digit/],
      ['gs://a..b', /dot-separated part/],
      ['gs://192.168.1.1', /IP address/],
      ['gs://google-exports', /google/],
      ['gs://goog-exports', /goog/],
      ['gs://audit-exports//x', /folders may not be empty/],
      ['gs://audit-exports/a//b', /folders may not be empty/],
      ['gs://audit-exports/x//', /folders may not be empty/],
      ['gs://audit-exports/../x', /"\.\."/],
      ['gs://audit-exports/a\nb', /control characters/],
    ];
    for (const [uri, message] of cases) {
      expect(() => parseGcsUri(uri), uri).toThrow(TypeError);
      expect(() => parseGcsUri(uri), uri).toThrow(message);
    }
    expect(() => parseGcsUri('gs://Audit')).toThrow('Invalid bucket name "Audit" in "gs://Audit"');
  });
});

describe('fake Cloud Storage', () => {
  it('computes the CRC32C the client computes', () => {
    for (const size of [0, 1, 7, 8, 9, 255, 4096, 65_537]) {
      const bytes = randomBytes(size);
      const expected = new CRC32C();
      expected.update(bytes);
      const half = size >> 1;
      expect(crc32cBase64(crc32cUpdate(crc32cUpdate(0, bytes.subarray(0, half)), bytes.subarray(half)))).toBe(expected.toString());
    }
  });

  it('serves multipart uploads, ranged downloads, and refuses to overwrite with ifGenerationMatch=0', async () => {
    const file = storage.bucket(BUCKET).file('fake-check/multipart.bin');
    const bytes = randomBytes(10_000);
    await file.save(bytes, { resumable: false, contentType: 'application/octet-stream', metadata: { metadata: { a: '1' } } });
    expect(fake.object(BUCKET, 'fake-check/multipart.bin')?.metadata).toEqual({ a: '1' });
    const [range] = await file.download({ start: 100, end: 199 });
    expect(range.equals(bytes.subarray(100, 200))).toBe(true);
    await expect(file.save(Buffer.from('x'), { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } })).rejects.toMatchObject({ code: 412 });
    await file.delete();
    expect(fake.object(BUCKET, 'fake-check/multipart.bin')).toBeUndefined();
  });

  it('keeps uploads in files when given a directory: streamed in, served by range, deleted with the object', async () => {
    const directory = await temporaryDirectory();
    const onDisk = await startFakeGcs({ buckets: [BUCKET], directory });
    try {
      const diskTarget = new GcsOutputTarget(createStorageClient({ GCS_API_ENDPOINT: onDisk.url }), { bucket: BUCKET, prefix: 'on-disk' });
      const bytes = randomBytes(3 * MiB + 17);
      const stored = await deliverStream(sourceOf(bytes), [], await diskTarget.open({ name: 'big.zip', ...ZIP }), new AbortController().signal);
      expect(stored.bytes).toBe(bytes.length);
      const object = onDisk.object(BUCKET, 'on-disk/big.zip')!;
      expect(object.size).toBe(bytes.length);
      expect(object.bytes.equals(bytes)).toBe(true);
      expect(await readdir(directory)).toEqual([basename(onDisk.fileOf(BUCKET, 'on-disk/big.zip')!)]);

      const client = createStorageClient({ GCS_API_ENDPOINT: onDisk.url });
      const [range] = await client.bucket(BUCKET).file('on-disk/big.zip').download({ start: MiB, end: 2 * MiB - 1 });
      expect(range.equals(bytes.subarray(MiB, 2 * MiB))).toBe(true);
      const [whole] = await client.bucket(BUCKET).file('on-disk/big.zip').download();
      expect(whole.equals(bytes)).toBe(true);

      // A discarded upload leaves no file behind; a deleted object takes its file with it.
      const discarded = await diskTarget.open({ name: 'discarded.zip', ...ZIP });
      discarded.stream.write(bytes.subarray(0, MiB));
      await discarded.discard();
      await client.bucket(BUCKET).file('on-disk/big.zip').delete();
      for (let wait = 0; wait < 50 && (await readdir(directory)).length > 0; wait++) await sleep(20);
      expect(await readdir(directory)).toEqual([]);
    } finally {
      await onDisk.close();
    }
  });
});

/**
 * Figures, not assertions: `GCS_THROUGHPUT=1 npx vitest run test/gcs-sink.test.ts -t throughput`.
 * The fake runs in a child process so that its hashing does not share the client's thread.
 */
describe.runIf(process.env.GCS_THROUGHPUT !== undefined)('throughput', () => {
  it('uploads ~200 MB through the sink, against writing the same bytes to a local file', async () => {
    const server = await startFakeGcsProcess({ buckets: [BUCKET] });
    try {
      const size = 200 * MiB;
      const targets: [string, OutputTarget][] = [
        ['local file', new FileOutputTarget(await temporaryDirectory())],
        ['gs:// sink', new GcsOutputTarget(createStorageClient({ GCS_API_ENDPOINT: server.url }), { bucket: BUCKET, prefix: 'throughput' })],
      ];
      for (let run = 1; run <= 3; run++) {
        for (const [label, output] of targets) {
          const object = await output.open({ name: `run-${run}.bin`, contentType: 'application/octet-stream', metadata: {} });
          const cpu = process.cpuUsage();
          const started = performance.now();
          const stored = await deliverStream(generatedSource(size), [], object, new AbortController().signal);
          const seconds = (performance.now() - started) / 1000;
          const used = process.cpuUsage(cpu);
          expect(stored.bytes).toBe(size);
          console.log(
            `${label} run ${run}: ${(size / 1e6 / seconds).toFixed(0)} MB/s, ${seconds.toFixed(2)} s, ` +
              `${((used.user + used.system) / 1e6).toFixed(2)} s CPU in this process, RSS ${Math.round(process.memoryUsage().rss / MiB)} MiB`,
          );
        }
      }
    } finally {
      await server.close();
    }
  }, 300_000);
});
