/**
 * An in-process stand-in for Cloud Storage, for tests: the part of the JSON API that
 * `@google-cloud/storage` uses to upload, read and delete objects, plus V4 signed GET URLs checked
 * against a test service account's public key.
 *
 * It keeps objects in memory (or, with {@link FakeGcsOptions.directory}, in files), one live
 * generation per name (no versioning), and answers on 127.0.0.1 with a free port. Both path styles the client produces are served: `/storage/v1/b/...`
 * (with `apiEndpoint`) and `/b/...` (with `STORAGE_EMULATOR_HOST`, which the client uses as its
 * base URL as is).
 *
 * To extend it, add a route in {@link FakeGcsServer.route} and a {@link FakeRequestKind}.
 */
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, verify, type Hash, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';

/** One stored object: its bytes and what the JSON API reports about it. */
export interface FakeObject {
  readonly bucket: string;
  readonly name: string;
  /** Decimal string, as in the JSON API. */
  readonly generation: string;
  /** The content; with {@link FakeGcsOptions.directory}, read from its file on each access. */
  readonly bytes: Buffer;
  /** Length of the content in bytes. */
  readonly size: number;
  readonly contentType: string;
  readonly contentDisposition: string | undefined;
  /** Custom metadata (`metadata` in the object resource). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Base64 of the big-endian CRC32C, as the JSON API reports it. */
  readonly crc32c: string;
  /** Base64 MD5. */
  readonly md5Hash: string;
  /** When the object was created, as the JSON API's `timeCreated` (and `updated`) report it; see {@link FakeGcs.setTimeCreated}. */
  readonly timeCreated: Date;
}

/** A resumable upload session, from its initiation until it is finalized, cancelled or failed. */
export interface FakeSession {
  readonly id: string;
  readonly bucket: string;
  readonly name: string;
  readonly state: 'open' | 'finalized' | 'cancelled' | 'failed';
  /** Bytes persisted so far. */
  readonly size: number;
  /** The object it created, once finalized. */
  readonly object: FakeObject | undefined;
}

/**
 * What goes wrong on an upload PUT (a PUT to a session URI that carries bytes or finalizes;
 * status queries do not count):
 * - `drop`: keep the first `afterBytes` bytes of this request's body, then destroy the connection.
 * - `503`: keep at most `persistBytes` (default all) of the body, read the rest, and answer 503
 *   once the body ended, without finalizing.
 * - `drop-response`: process the request fully (finalizing the object if it was the last one),
 *   then destroy the connection instead of answering.
 */
export type UploadFault =
  | { readonly kind: 'drop'; readonly afterBytes: number }
  | { readonly kind: '503'; readonly persistBytes?: number }
  | { readonly kind: 'drop-response' };

/** How a request was classified; see {@link FakeGcs.count}. */
export type FakeRequestKind =
  | 'initiate'
  | 'upload'
  | 'status'
  | 'cancel'
  | 'multipart'
  | 'metadata'
  | 'download'
  | 'delete'
  | 'signed-download'
  | 'token'
  | 'unknown';

/** One request the server saw. */
export interface FakeRequest {
  readonly kind: FakeRequestKind;
  readonly method: string;
  /** Path and query as sent. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The running server and what tests inspect or change on it. */
export interface FakeGcs {
  /** `http://127.0.0.1:PORT`: the `apiEndpoint` (or `STORAGE_EMULATOR_HOST`) to give the client. */
  readonly url: string;
  /** Live objects by `bucket/name`. */
  readonly objects: ReadonlyMap<string, FakeObject>;
  /** The live object `name` in `bucket`, if any. */
  object(bucket: string, name: string): FakeObject | undefined;
  /** The file that holds the live object `name`, when the fake keeps uploads on disk (see {@link FakeGcsOptions.directory}). */
  fileOf(bucket: string, name: string): string | undefined;
  /** Every resumable session by id, including finished ones. */
  readonly sessions: ReadonlyMap<string, FakeSession>;
  /** Every request so far, in arrival order. */
  readonly requests: readonly FakeRequest[];
  /** How many requests of `kind` arrived so far. */
  count(kind: FakeRequestKind): number;
  /** Upload PUTs whose body is still being received. */
  uploadsInProgress(): number;
  /** Makes the `nth` upload PUT from now (1 = the next one) fail as `fault` describes. */
  injectUploadFault(fault: UploadFault, nth?: number): void;
  /**
   * Stops reading upload bodies, as a congested link would, until the returned function is called:
   * the client's writes then back up to the caller.
   */
  pauseUploads(): () => void;
  /** Added to the real clock when the server judges a signed URL's validity window. */
  clockSkewMs: number;
  /** Accepts V4 signatures by `clientEmail` that verify with `publicKey`. */
  trustSigner(clientEmail: string, publicKey: KeyObject): void;
  /**
   * Stores an object directly, bypassing the API (for setting up a test). `timeCreated` (default
   * now) backdates it, as if the upload happened then.
   */
  putObject(bucket: string, name: string, bytes: Buffer, options?: { contentType?: string; metadata?: Record<string, string>; timeCreated?: Date }): FakeObject;
  /**
   * Makes the live object `name` report `timeCreated` (same bytes and generation), as if it had
   * been uploaded then: with {@link clockSkewMs} this ages an object without waiting.
   * @throws Error when there is no such object.
   */
  setTimeCreated(bucket: string, name: string, timeCreated: Date): FakeObject;
  /** Stops listening and cuts every open connection. */
  close(): Promise<void>;
}

/** Options of {@link startFakeGcs}. */
export interface FakeGcsOptions {
  /** Buckets that exist; requests for any other bucket get 404. Default `['audit-exports']`. */
  readonly buckets?: readonly string[];
  /**
   * Keep uploaded bytes in files in this (existing) folder instead of memory, for uploads of
   * hundreds of megabytes (the benchmark): resumable uploads are written there as they arrive, at
   * the pace the disk takes them, and served from there. Deleting or replacing an object deletes
   * its file; the folder itself is the caller's.
   */
  readonly directory?: string;
}

/** Starts a fake Cloud Storage on 127.0.0.1 with a free port. */
export async function startFakeGcs(options: FakeGcsOptions = {}): Promise<FakeGcs> {
  const fake = new FakeGcsServer(options.buckets ?? ['audit-exports'], options.directory);
  await fake.listen();
  return fake;
}

/** A service account made for one test run: its key file and identity. */
export interface TestServiceAccount {
  readonly clientEmail: string;
  readonly projectId: string;
  /** A service-account JSON key, for `GOOGLE_APPLICATION_CREDENTIALS` or `keyFilename`. */
  readonly keyFile: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/**
 * Generates an RSA 2048 key, writes it as a service-account JSON key into `directory` (with
 * `token_uri` on the fake server, in case the client ever asks for a token) and tells `fake` to
 * trust its signatures.
 */
export async function createTestServiceAccount(fake: FakeGcs, directory: string): Promise<TestServiceAccount> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const projectId = 'audit-export-test';
  const clientEmail = `exporter@${projectId}.iam.gserviceaccount.com`;
  const keyFile = join(directory, 'service-account.json');
  const key = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: randomBytes(20).toString('hex'),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    client_email: clientEmail,
    client_id: '100000000000000000001',
    auth_uri: `${fake.url}/auth`,
    token_uri: `${fake.url}/token`,
  };
  await writeFile(keyFile, JSON.stringify(key, null, 2), { mode: 0o600 });
  fake.trustSigner(clientEmail, publicKey);
  return { clientEmail, projectId, keyFile, privateKey, publicKey };
}

/**
 * CRC32C (Castagnoli) tables for slicing by 8: `TABLES[k][b]` is the CRC of byte `b` followed by
 * `k` zero bytes. Eight bytes per step instead of the client's one keeps the fake from being the
 * bottleneck of throughput figures; test/gcs-sink.test.ts checks it against the client's CRC32C.
 */
const CRC32C_TABLES: readonly Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const [first] = tables as [Uint32Array];
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    first[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    let crc = first[byte] as number;
    for (const table of tables.slice(1)) {
      crc = (first[crc & 0xff] as number) ^ (crc >>> 8);
      table[byte] = crc;
    }
  }
  return tables;
})();

/** Continues a CRC32C over `bytes`; start with 0. */
export function crc32cUpdate(crc: number, bytes: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC32C_TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = ~crc >>> 0;
  let i = 0;
  const whole = bytes.length - (bytes.length % 8);
  for (; i < whole; i += 8) {
    const low = (c ^ ((bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24))) >>> 0;
    c =
      (t7[low & 0xff] as number) ^
      (t6[(low >>> 8) & 0xff] as number) ^
      (t5[(low >>> 16) & 0xff] as number) ^
      (t4[low >>> 24] as number) ^
      (t3[bytes[i + 4] as number] as number) ^
      (t2[bytes[i + 5] as number] as number) ^
      (t1[bytes[i + 6] as number] as number) ^
      (t0[bytes[i + 7] as number] as number);
  }
  for (; i < bytes.length; i++) c = (t0[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/** A CRC32C as the JSON API reports it: base64 of the big-endian 32-bit value. */
export function crc32cBase64(crc: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(crc);
  return bytes.toString('base64');
}

interface Session extends FakeSession {
  state: FakeSession['state'];
  size: number;
  object: FakeObject | undefined;
  /** The persisted bytes, in memory... */
  readonly chunks: Buffer[];
  /** ...or in this file (with a directory), written through `file`. */
  readonly path: string | undefined;
  readonly file: WriteStream | undefined;
  /** Running hashes of the persisted bytes, so finalizing a large object does not stall. */
  crc32c: number;
  readonly md5: Hash;
  readonly contentType: string;
  readonly contentDisposition: string | undefined;
  readonly metadata: Record<string, string>;
  readonly ifGenerationMatch: string | null;
  /** The upload PUT being received, so that cancelling can cut it. */
  activeRequest: IncomingMessage | undefined;
}

/** Thrown inside a handler to answer with a JSON API error. */
class HttpError extends Error {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, message: string, reason: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

const JSON_API_PREFIX = '/storage/v1';
const SIGNED_URL_MAX_SECONDS = 604_800;

class FakeGcsServer implements FakeGcs {
  url = '';
  clockSkewMs = 0;
  readonly objects = new Map<string, FakeObject>();
  readonly sessions = new Map<string, Session>();
  readonly requests: FakeRequest[] = [];
  readonly #buckets: Set<string>;
  readonly #signers = new Map<string, KeyObject>();
  readonly #sockets = new Set<Socket>();
  /** Pending faults, each with how many more upload PUTs pass before it strikes. */
  readonly #faults: { remaining: number; fault: UploadFault }[] = [];
  #lastGeneration = 0;
  #uploadsPaused = false;
  readonly #activeUploads = new Set<IncomingMessage>();
  readonly #server: Server;
  readonly #directory: string | undefined;
  /** The file of each object kept on disk. */
  readonly #files = new WeakMap<FakeObject, string>();

  constructor(buckets: readonly string[], directory?: string) {
    this.#buckets = new Set(buckets);
    this.#directory = directory;
    this.#server = createServer((request, response) => {
      this.route(request, response).catch((error: unknown) => this.#fail(response, error));
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.#server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  object(bucket: string, name: string): FakeObject | undefined {
    return this.objects.get(`${bucket}/${name}`);
  }

  fileOf(bucket: string, name: string): string | undefined {
    const object = this.object(bucket, name);
    return object === undefined ? undefined : this.#files.get(object);
  }

  count(kind: FakeRequestKind): number {
    return this.requests.filter((request) => request.kind === kind).length;
  }

  uploadsInProgress(): number {
    return this.#activeUploads.size;
  }

  injectUploadFault(fault: UploadFault, nth = 1): void {
    if (!Number.isSafeInteger(nth) || nth < 1) throw new TypeError(`Expected nth to be a whole number from 1, got ${nth}`);
    this.#faults.push({ remaining: nth, fault });
  }

  pauseUploads(): () => void {
    this.#uploadsPaused = true;
    for (const request of this.#activeUploads) request.pause();
    return () => {
      this.#uploadsPaused = false;
      for (const request of this.#activeUploads) request.resume();
    };
  }

  trustSigner(clientEmail: string, publicKey: KeyObject): void {
    this.#signers.set(clientEmail, publicKey);
  }

  putObject(bucket: string, name: string, bytes: Buffer, options: { contentType?: string; metadata?: Record<string, string>; timeCreated?: Date } = {}): FakeObject {
    this.#bucket(bucket);
    const object = this.#store(bucket, name, bytes, options.contentType ?? 'application/octet-stream', undefined, options.metadata ?? {});
    return options.timeCreated === undefined ? object : this.setTimeCreated(bucket, name, options.timeCreated);
  }

  setTimeCreated(bucket: string, name: string, timeCreated: Date): FakeObject {
    const live = this.object(bucket, name);
    if (live === undefined) throw new Error(`Fake GCS: no object ${bucket}/${name} to set timeCreated on`);
    if (!(timeCreated instanceof Date) || Number.isNaN(timeCreated.getTime())) throw new TypeError(`Expected timeCreated to be a valid Date, got ${String(timeCreated)}`);
    // A copy keeps the `bytes` getter (spreading would read it once and freeze it).
    const aged: FakeObject = Object.create(Object.getPrototypeOf(live) as object, {
      ...Object.getOwnPropertyDescriptors(live),
      timeCreated: { value: timeCreated, enumerable: true },
    }) as FakeObject;
    const path = this.#files.get(live);
    if (path !== undefined) this.#files.set(aged, path);
    this.objects.set(`${bucket}/${name}`, aged);
    return aged;
  }

  /** Dispatches one request. Unknown routes get 404, as from the real service. */
  async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.url);
    const method = request.method ?? 'GET';
    const path = url.pathname;
    const record = (kind: FakeRequestKind): void => {
      this.requests.push({ kind, method, url: request.url ?? '', headers: { ...request.headers } });
    };

    if (path === '/token' && method === 'POST') {
      record('token');
      await readBody(request);
      return sendJson(response, 200, { access_token: 'fake-access-token', expires_in: 3600, token_type: 'Bearer' });
    }

    const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(path);
    if (upload !== null) {
      const bucket = decodeURIComponent(upload[1] ?? '');
      const uploadId = url.searchParams.get('upload_id');
      const uploadType = url.searchParams.get('uploadType');
      if (uploadId !== null) {
        if (method === 'DELETE') {
          record('cancel');
          return this.#cancel(uploadId, response);
        }
        if (method === 'PUT') {
          const contentRange = request.headers['content-range'] ?? '';
          const isStatusQuery = /^bytes \*\/\*$/.test(contentRange);
          record(isStatusQuery ? 'status' : 'upload');
          return await this.#uploadPut(uploadId, request, response, contentRange);
        }
      }
      if (method === 'POST' && uploadType === 'resumable') {
        record('initiate');
        return await this.#initiate(bucket, url, request, response);
      }
      if (method === 'POST' && uploadType === 'multipart') {
        record('multipart');
        return await this.#multipart(bucket, url, request, response);
      }
    }

    // JSON API object routes, with or without the /storage/v1 prefix (see the file comment).
    const apiPath = path.startsWith(`${JSON_API_PREFIX}/`) ? path.slice(JSON_API_PREFIX.length) : path;
    const objectRoute = /^\/b\/([^/]+)\/o\/([^/]+)$/.exec(apiPath);
    if (objectRoute !== null) {
      const bucket = decodeURIComponent(objectRoute[1] ?? '');
      const name = decodeURIComponent(objectRoute[2] ?? '');
      if (method === 'GET' && url.searchParams.get('alt') === 'media') {
        record('download');
        return this.#sendMedia(request, response, this.#live(bucket, name, url.searchParams.get('generation')));
      }
      if (method === 'GET') {
        record('metadata');
        return sendJson(response, 200, this.#resource(this.#live(bucket, name, url.searchParams.get('generation'))));
      }
      if (method === 'DELETE') {
        record('delete');
        return this.#delete(bucket, name, url.searchParams, response);
      }
    }

    // XML API path style, as signed URLs use it: /BUCKET/OBJECT?X-Goog-Signature=...
    const xmlRoute = /^\/([^/]+)\/(.+)$/.exec(path);
    if (xmlRoute !== null && (method === 'GET' || method === 'HEAD') && url.searchParams.has('X-Goog-Signature')) {
      record('signed-download');
      const refusal = this.#refuseSignature(request, url);
      if (refusal !== undefined) return sendXmlError(response, 403, refusal.code, refusal.message);
      const bucket = decodeURIComponent(xmlRoute[1] ?? '');
      const name = decodeURIComponent(xmlRoute[2] ?? '');
      return this.#sendMedia(request, response, this.#live(bucket, name, url.searchParams.get('generation')));
    }

    record('unknown');
    throw new HttpError(404, `Not found: ${method} ${path}`, 'notFound');
  }

  /** POST ...?uploadType=resumable: checks preconditions now (and again when finalizing). */
  async #initiate(bucket: string, url: URL, request: IncomingMessage, response: ServerResponse): Promise<void> {
    this.#bucket(bucket);
    const name = url.searchParams.get('name');
    if (name === null || name === '') throw new HttpError(400, 'Required parameter: name', 'required');
    const body = await readBody(request);
    const resource = body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
    const ifGenerationMatch = url.searchParams.get('ifGenerationMatch');
    this.#checkPrecondition(bucket, name, ifGenerationMatch);
    // The client moves contentType out of the resource into this header.
    const headerType = request.headers['x-upload-content-type'];
    const id = randomBytes(16).toString('hex');
    const path = this.#directory === undefined ? undefined : join(this.#directory, `upload-${id}`);
    const session: Session = {
      id,
      bucket,
      name,
      state: 'open',
      size: 0,
      object: undefined,
      chunks: [],
      path,
      // A failed write surfaces when finalizing (file.end reports it); cancelling ignores it.
      file: path === undefined ? undefined : createWriteStream(path).on('error', () => {}),
      crc32c: 0,
      md5: createHash('md5'),
      contentType: typeof headerType === 'string' ? headerType : stringField(resource.contentType) ?? 'application/octet-stream',
      contentDisposition: stringField(resource.contentDisposition),
      metadata: stringRecord(resource.metadata),
      ifGenerationMatch,
      activeRequest: undefined,
    };
    this.sessions.set(session.id, session);
    const location = new URL(`/upload/storage/v1/b/${encodeURIComponent(bucket)}/o`, this.url);
    location.searchParams.set('uploadType', 'resumable');
    location.searchParams.set('name', name);
    location.searchParams.set('upload_id', session.id);
    response.writeHead(200, { Location: location.href, 'Content-Length': '0' });
    response.end();
  }

  /**
   * A PUT to a session URI. `Content-Range` says what it is:
   * - `bytes *\/*`: a status query: 308 with `Range: bytes=0-LAST` (none when empty), or 200 and
   *   the resource once finalized.
   * - `bytes *\/TOTAL`: finalize when TOTAL bytes are persisted.
   * - `bytes FIRST-LAST/TOTAL` or `bytes FIRST-*\/TOTAL`: bytes from FIRST; bytes the session
   *   already holds are skipped. `-*` (how the client streams without `chunkSize`) means the
   *   object ends with this request; otherwise it ends when LAST + 1 = TOTAL.
   */
  async #uploadPut(uploadId: string, request: IncomingMessage, response: ServerResponse, contentRange: string): Promise<void> {
    const session = this.sessions.get(uploadId);
    if (session === undefined) throw new HttpError(404, 'No such upload session', 'notFound');
    if (session.state === 'cancelled') throw new HttpError(499, 'The upload session was cancelled', 'clientClosedRequest');
    if (session.state === 'failed') throw new HttpError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
    if (session.state === 'finalized' && session.object !== undefined) {
      await readBody(request);
      return sendJson(response, 200, this.#resource(session.object));
    }

    const status = /^bytes \*\/(\*|\d+)$/.exec(contentRange);
    if (status !== null) {
      await readBody(request);
      const total = status[1] === '*' ? undefined : Number(status[1]);
      if (total !== undefined && total === session.size) return await this.#finalize(session, response);
      return sendIncomplete(response, session.size);
    }
    const range = /^bytes (\d+)-(\d+|\*)\/(\d+|\*)$/.exec(contentRange);
    if (range === null) throw new HttpError(400, `Invalid Content-Range: ${JSON.stringify(contentRange)}`, 'invalid');
    const first = Number(range[1]);
    const last = range[2] === '*' ? undefined : Number(range[2]);
    const total = range[3] === '*' ? undefined : Number(range[3]);
    if (first > session.size) {
      throw new HttpError(400, `Non-contiguous upload: the session holds ${session.size} bytes, this request starts at ${first}`, 'invalid');
    }

    const fault = this.#takeFault();
    let skip = session.size - first;
    let received = 0;
    let persistLimit = fault?.kind === '503' ? (fault.persistBytes ?? Infinity) : Infinity;
    session.activeRequest = request;
    const completed = await new Promise<boolean>((resolve) => {
      request.on('data', (chunk: Buffer) => {
        let data = chunk;
        const before = received;
        received += data.length;
        if (fault?.kind === 'drop' && received > fault.afterBytes) data = data.subarray(0, Math.max(fault.afterBytes - before, 0));
        if (skip > 0) {
          const skipped = Math.min(skip, data.length);
          data = data.subarray(skipped);
          skip -= skipped;
        }
        if (persistLimit < data.length) data = data.subarray(0, Math.max(persistLimit, 0));
        persistLimit -= data.length;
        if (data.length > 0 && session.state === 'open') {
          if (session.file === undefined) {
            session.chunks.push(data);
          } else if (!session.file.write(data)) {
            // The disk is behind: stop reading the body, so the bytes wait in the socket, not here.
            request.pause();
            session.file.once('drain', () => {
              if (!this.#uploadsPaused) request.resume();
            });
          }
          session.size += data.length;
          session.crc32c = crc32cUpdate(session.crc32c, data);
          session.md5.update(data);
        }
        if (fault?.kind === 'drop' && received >= fault.afterBytes) request.socket.destroy();
      });
      request.once('end', () => resolve(true));
      request.once('close', () => resolve(request.complete));
      request.on('error', () => resolve(false));
      this.#activeUploads.add(request);
      if (this.#uploadsPaused) request.pause();
    });
    this.#activeUploads.delete(request);
    session.activeRequest = undefined;
    // A request the client did not finish (aborted, dropped) never finalizes: its bytes stay.
    if (!completed || request.socket?.destroyed === true || session.state !== 'open') return;
    if (fault?.kind === '503') throw new HttpError(503, 'Backend unavailable (injected)', 'backendError');

    const ends = last === undefined || (total !== undefined && last + 1 === total);
    if (total !== undefined && ends && total !== session.size) {
      throw new HttpError(400, `Declared ${total} bytes but the session holds ${session.size}`, 'invalid');
    }
    if (!ends) return sendIncomplete(response, session.size);
    if (fault?.kind === 'drop-response') {
      await this.#finalizeQuietly(session);
      request.socket.destroy();
      return;
    }
    return await this.#finalize(session, response);
  }

  async #finalize(session: Session, response: ServerResponse): Promise<void> {
    await this.#finalizeQuietly(session);
    if (session.object === undefined) throw new HttpError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
    sendJson(response, 200, this.#resource(session.object));
  }

  /** Finalizes `session` (or fails it on a broken precondition) without answering. */
  async #finalizeQuietly(session: Session): Promise<void> {
    // Claimed before waiting for the file, so that a concurrent status query or cancel sees it taken.
    session.state = 'finalized';
    const { file, path } = session;
    if (file !== undefined) await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
    try {
      this.#checkPrecondition(session.bucket, session.name, session.ifGenerationMatch);
    } catch {
      session.state = 'failed';
      session.chunks.length = 0;
      if (path !== undefined) await unlink(path).catch(() => {});
      return;
    }
    const content = path === undefined ? Buffer.concat(session.chunks) : { path, size: session.size };
    session.chunks.length = 0;
    const hashes = { crc32c: crc32cBase64(session.crc32c), md5Hash: session.md5.digest('base64') };
    session.object = this.#store(session.bucket, session.name, content, session.contentType, session.contentDisposition, session.metadata, hashes);
  }

  /** DELETE on a session URI: cancels it (499, as the real service answers); cuts a PUT in progress. */
  #cancel(uploadId: string, response: ServerResponse): void {
    const session = this.sessions.get(uploadId);
    if (session === undefined) throw new HttpError(404, 'No such upload session', 'notFound');
    if (session.state === 'open') {
      session.state = 'cancelled';
      session.chunks.length = 0;
      session.activeRequest?.socket?.destroy();
      if (session.file !== undefined && session.path !== undefined) {
        const path = session.path;
        session.file.once('close', () => void unlink(path).catch(() => {}));
        session.file.destroy();
      }
    }
    if (session.state === 'finalized' && session.object !== undefined) return sendJson(response, 200, this.#resource(session.object));
    response.writeHead(499, { 'Content-Length': '0' });
    response.end();
  }

  /** POST ...?uploadType=multipart: a JSON resource part, then the media part. */
  async #multipart(bucket: string, url: URL, request: IncomingMessage, response: ServerResponse): Promise<void> {
    this.#bucket(bucket);
    const boundary = /boundary=("?)([^";]+)\1/.exec(request.headers['content-type'] ?? '')?.[2];
    if (boundary === undefined) throw new HttpError(400, 'Expected multipart/related with a boundary', 'invalid');
    const parts = splitMultipart(await readBody(request), boundary);
    const [resourcePart, mediaPart] = parts;
    if (resourcePart === undefined || mediaPart === undefined) throw new HttpError(400, 'Expected two parts', 'invalid');
    const resource = JSON.parse(resourcePart.body.toString('utf8')) as Record<string, unknown>;
    const name = url.searchParams.get('name') ?? stringField(resource.name);
    if (name === undefined || name === '') throw new HttpError(400, 'Required parameter: name', 'required');
    this.#checkPrecondition(bucket, name, url.searchParams.get('ifGenerationMatch'));
    const contentType = stringField(resource.contentType) ?? mediaPart.headers.get('content-type') ?? 'application/octet-stream';
    const object = this.#store(bucket, name, mediaPart.body, contentType, stringField(resource.contentDisposition), stringRecord(resource.metadata));
    sendJson(response, 200, this.#resource(object));
  }

  #delete(bucket: string, name: string, query: URLSearchParams, response: ServerResponse): void {
    const object = this.#live(bucket, name, query.get('generation'));
    const ifGenerationMatch = query.get('ifGenerationMatch');
    if (ifGenerationMatch !== null && ifGenerationMatch !== object.generation) {
      throw new HttpError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
    }
    this.objects.delete(`${bucket}/${name}`);
    this.#removeFile(object);
    response.writeHead(204);
    response.end();
  }

  /** Full body, or one `Range: bytes=...` (206); hashes in `x-goog-hash` so the client validates. */
  #sendMedia(request: IncomingMessage, response: ServerResponse, object: FakeObject): void {
    const headers: Record<string, string> = {
      'Content-Type': object.contentType,
      'x-goog-generation': object.generation,
      'x-goog-stored-content-encoding': 'identity',
      'x-goog-hash': `crc32c=${object.crc32c},md5=${object.md5Hash}`,
      'Accept-Ranges': 'bytes',
    };
    if (object.contentDisposition !== undefined) headers['Content-Disposition'] = object.contentDisposition;
    const { size } = object;
    const rangeHeader = request.headers.range;
    let range = { start: 0, end: size - 1 };
    let status = 200;
    if (rangeHeader !== undefined) {
      const parsed = parseRange(rangeHeader, size);
      if (parsed === undefined) {
        response.writeHead(416, { 'Content-Range': `bytes */${size}` });
        response.end();
        return;
      }
      range = parsed;
      status = 206;
      headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
    }
    headers['Content-Length'] = String(range.end + 1 - range.start);
    response.writeHead(status, headers);
    const path = this.#files.get(object);
    if (request.method === 'HEAD' || size === 0) response.end();
    else if (path === undefined) response.end(object.bytes.subarray(range.start, range.end + 1));
    else createReadStream(path, { start: range.start, end: range.end }).on('error', () => response.destroy()).pipe(response);
  }

  /**
   * Why a V4 signed request must be refused, or undefined when it verifies and is inside its
   * validity window on the server's (skewable) clock. Mirrors the client's canonical request:
   * method, path as sent, sorted RFC 3986-encoded query without the signature, the signed headers,
   * `UNSIGNED-PAYLOAD`.
   */
  #refuseSignature(request: IncomingMessage, url: URL): { code: string; message: string } | undefined {
    const query = url.searchParams;
    if (query.get('X-Goog-Algorithm') !== 'GOOG4-RSA-SHA256') return { code: 'InvalidArgument', message: 'Unsupported X-Goog-Algorithm' };
    const credential = query.get('X-Goog-Credential') ?? '';
    const slash = credential.indexOf('/');
    const clientEmail = credential.slice(0, slash);
    const scope = credential.slice(slash + 1);
    const date = query.get('X-Goog-Date') ?? '';
    const expires = Number(query.get('X-Goog-Expires'));
    const signedHeaders = query.get('X-Goog-SignedHeaders') ?? '';
    const signature = query.get('X-Goog-Signature') ?? '';
    const signedAt = parseGoogDate(date);
    if (slash < 0 || signedAt === undefined || scope !== `${date.slice(0, 8)}/auto/storage/goog4_request`) {
      return { code: 'AuthenticationRequired', message: 'Malformed X-Goog-Credential or X-Goog-Date' };
    }
    if (!Number.isSafeInteger(expires) || expires < 1 || expires > SIGNED_URL_MAX_SECONDS) {
      return { code: 'InvalidArgument', message: `X-Goog-Expires must be 1 to ${SIGNED_URL_MAX_SECONDS}` };
    }
    const publicKey = this.#signers.get(clientEmail);
    if (publicKey === undefined) return { code: 'AccessDenied', message: `Unknown signer ${clientEmail}` };

    const canonicalQuery = [...query.entries()]
      .filter(([key]) => key !== 'X-Goog-Signature')
      .map(([key, value]) => [rfc3986(key), rfc3986(value)] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => `${key}=${value}`)
      .join('&');
    const headerNames = signedHeaders.split(';');
    const canonicalHeaders = headerNames.map((name) => `${name}:${this.#headerValue(request, name)}\n`).join('');
    const rawPath = (request.url ?? '/').split('?')[0] ?? '/';
    const canonicalRequest = [request.method, rawPath, canonicalQuery, canonicalHeaders, signedHeaders, 'UNSIGNED-PAYLOAD'].join('\n');
    const stringToSign = ['GOOG4-RSA-SHA256', date, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
    const valid = /^[0-9a-f]+$/i.test(signature) && verify('RSA-SHA256', Buffer.from(stringToSign), publicKey, Buffer.from(signature, 'hex'));
    if (!valid) return { code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided.' };

    const now = Date.now() + this.clockSkewMs;
    if (now < signedAt) return { code: 'AccessDenied', message: 'Request is not yet valid (X-Goog-Date is in the future).' };
    if (now > signedAt + expires * 1000) return { code: 'ExpiredToken', message: 'Invalid argument. Request has expired.' };
    return undefined;
  }

  /**
   * A signed header's value. For `host` the client signs its endpoint's host name without the port
   * (signer.js: `extensionHeaders.host = fqdn.hostname`), so the port is dropped here too.
   */
  #headerValue(request: IncomingMessage, name: string): string {
    const value = request.headers[name];
    const text = Array.isArray(value) ? value.join(',') : (value ?? '');
    if (name === 'host') return text.replace(/:\d+$/, '');
    return text.trim().replace(/\s{2,}/g, ' ');
  }

  #takeFault(): UploadFault | undefined {
    for (const pending of this.#faults) pending.remaining -= 1;
    const index = this.#faults.findIndex((pending) => pending.remaining === 0);
    if (index < 0) return undefined;
    const [pending] = this.#faults.splice(index, 1);
    return pending?.fault;
  }

  #bucket(bucket: string): void {
    if (!this.#buckets.has(bucket)) throw new HttpError(404, 'The specified bucket does not exist.', 'notFound');
  }

  #live(bucket: string, name: string, generation: string | null): FakeObject {
    this.#bucket(bucket);
    const object = this.object(bucket, name);
    if (object === undefined || (generation !== null && generation !== object.generation)) {
      throw new HttpError(404, `No such object: ${bucket}/${name}`, 'notFound');
    }
    return object;
  }

  /** `ifGenerationMatch`: `0` means "only if there is no live object", any other value that generation. */
  #checkPrecondition(bucket: string, name: string, ifGenerationMatch: string | null): void {
    if (ifGenerationMatch === null) return;
    const live = this.object(bucket, name);
    const holds = ifGenerationMatch === '0' ? live === undefined : live?.generation === ifGenerationMatch;
    if (!holds) throw new HttpError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
  }

  /** Makes `content` the live object `name`: bytes in memory, or a file (then `hashes` are required). */
  #store(
    bucket: string,
    name: string,
    content: Buffer | { readonly path: string; readonly size: number },
    contentType: string,
    contentDisposition: string | undefined,
    metadata: Record<string, string>,
    hashes?: { crc32c: string; md5Hash: string },
  ): FakeObject {
    // Real generations are microsecond timestamps; strictly increasing here so each write differs.
    this.#lastGeneration = Math.max(Date.now() * 1000, this.#lastGeneration + 1);
    const inMemory = Buffer.isBuffer(content) ? content : undefined;
    const onDisk = Buffer.isBuffer(content) ? undefined : content;
    const hash = (): { crc32c: string; md5Hash: string } => {
      if (hashes !== undefined) return hashes;
      const bytes = inMemory ?? Buffer.alloc(0);
      return { crc32c: crc32cBase64(crc32cUpdate(0, bytes)), md5Hash: createHash('md5').update(bytes).digest('base64') };
    };
    const object: FakeObject = {
      bucket,
      name,
      generation: String(this.#lastGeneration),
      get bytes() {
        return inMemory ?? readFileSync(onDisk?.path ?? '');
      },
      size: inMemory?.length ?? onDisk?.size ?? 0,
      contentType,
      contentDisposition,
      metadata,
      ...hash(),
      timeCreated: new Date(),
    };
    if (onDisk !== undefined) this.#files.set(object, onDisk.path);
    const key = `${bucket}/${name}`;
    const replaced = this.objects.get(key);
    this.objects.set(key, object);
    if (replaced !== undefined) this.#removeFile(replaced);
    return object;
  }

  /** Deletes the file of an object kept on disk (one no longer live). */
  #removeFile(object: FakeObject): void {
    const path = this.#files.get(object);
    if (path !== undefined) void unlink(path).catch(() => {});
  }

  /** The JSON API object resource (sizes and generations are strings there). */
  #resource(object: FakeObject): Record<string, unknown> {
    const path = `/b/${encodeURIComponent(object.bucket)}/o/${encodeURIComponent(object.name)}`;
    return {
      kind: 'storage#object',
      id: `${object.bucket}/${object.name}/${object.generation}`,
      selfLink: `${this.url}${JSON_API_PREFIX}${path}`,
      mediaLink: `${this.url}/download${JSON_API_PREFIX}${path}?generation=${object.generation}&alt=media`,
      name: object.name,
      bucket: object.bucket,
      generation: object.generation,
      metageneration: '1',
      contentType: object.contentType,
      ...(object.contentDisposition === undefined ? {} : { contentDisposition: object.contentDisposition }),
      storageClass: 'STANDARD',
      size: String(object.size),
      md5Hash: object.md5Hash,
      crc32c: object.crc32c,
      etag: Buffer.from(object.generation).toString('base64'),
      timeCreated: object.timeCreated.toISOString(),
      updated: object.timeCreated.toISOString(),
      ...(Object.keys(object.metadata).length === 0 ? {} : { metadata: object.metadata }),
    };
  }

  #fail(response: ServerResponse, error: unknown): void {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    if (error instanceof HttpError) {
      sendJson(response, error.status, { error: { code: error.status, message: error.message, errors: [{ message: error.message, domain: 'global', reason: error.reason }] } });
      return;
    }
    sendJson(response, 500, { error: { code: 500, message: `Fake GCS bug: ${(error as Error).stack ?? String(error)}` } });
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

function sendXmlError(response: ServerResponse, status: number, code: string, message: string): void {
  const text = `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  response.writeHead(status, { 'Content-Type': 'application/xml; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

/** 308 "Resume Incomplete", with the persisted range when there is one. */
function sendIncomplete(response: ServerResponse, size: number): void {
  response.writeHead(308, size > 0 ? { Range: `bytes=0-${size - 1}`, 'Content-Length': '0' } : { 'Content-Length': '0' });
  response.end();
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function splitMultipart(body: Buffer, boundary: string): { headers: Map<string, string>; body: Buffer }[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { headers: Map<string, string>; body: Buffer }[] = [];
  let start = body.indexOf(delimiter);
  while (start >= 0) {
    const contentStart = start + delimiter.length;
    if (body.subarray(contentStart, contentStart + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, contentStart);
    if (next < 0) break;
    const part = body.subarray(contentStart + 2, next - 2); // drop the CRLF after the delimiter and before the next
    const headerEnd = part.indexOf('\r\n\r\n');
    const headers = new Map<string, string>();
    for (const line of part.subarray(0, Math.max(headerEnd, 0)).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    parts.push({ headers, body: part.subarray(headerEnd + 4) });
    start = next;
  }
  return parts;
}

/** One `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX` range, or undefined if unsatisfiable. */
function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return undefined;
    return { start: Math.max(size - suffix, 0), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return undefined;
  return { start, end };
}

/** `YYYYMMDDTHHMMSSZ` as epoch milliseconds. */
function parseGoogDate(text: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second] = match.map(Number) as [number, number, number, number, number, number, number];
  return Date.UTC(year, month - 1, day, hour, minute, second);
}

/** Percent-encodes everything but `A-Z a-z 0-9 - . _ ~`, as V4 signing requires. */
function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function stringField(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, String(item)]));
}

/** A fake running in a child process: only its address, and a way to stop it. */
export interface FakeGcsProcess {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts a fake in a child Node process (run from this file's TypeScript by Node's type
 * stripping), so that its hashing and copying do not share the test's thread: for throughput
 * figures of the client alone. Objects cannot be inspected there.
 */
export async function startFakeGcsProcess(options: FakeGcsOptions = {}): Promise<FakeGcsProcess> {
  const script = `
    const { startFakeGcs } = await import(process.argv[1]);
    const fake = await startFakeGcs(JSON.parse(process.argv[2]));
    process.stdout.write(fake.url + '\\n');
    process.stdin.resume();
    process.stdin.on('end', () => fake.close().then(() => process.exit(0)));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '--eval', script, import.meta.url, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const url = line.toString('utf8').trim();
  return {
    url,
    async close() {
      child.stdin.end();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}
