import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Storage, type File, type FileMetadata, type StorageOptions } from '@google-cloud/storage';
import { isPlainFileName } from './file.js';
import type { ObjectDescription, OutputTarget, PendingObject, StoredObject } from './output.js';

/** A Cloud Storage folder: a bucket and a prefix inside it (no leading or trailing slash; may be empty). */
export interface GcsLocation {
  readonly bucket: string;
  readonly prefix: string;
}

/** The object to sign a link for. */
export interface GcsObjectReference {
  readonly bucket: string;
  readonly object: string;
  /** A decimal generation: the link then serves exactly that generation, never a later one. */
  readonly generation?: string;
}

/** A signed download link and when it stops working. */
export interface SignedReadUrl {
  readonly url: string;
  /** `X-Goog-Date` + `X-Goog-Expires`: the last instant the link is accepted. */
  readonly expiresAt: Date;
}

/** The longest V4 signature: 7 days. */
export const MAX_SIGNED_URL_SECONDS = 604_800;

const MAX_OBJECT_NAME_BYTES = 1024;

/** Generation 0 matches only a name with no live object: the write creates, never replaces. */
const NEVER_OVERWRITE = { ifGenerationMatch: 0 } as const;

/**
 * Parses `gs://BUCKET/PREFIX`. The prefix is a folder: a trailing slash is optional, it may be
 * empty (`gs://BUCKET`), and objects are named `PREFIX/NAME`. Nothing is percent-decoded: like
 * gsutil, the URI holds the object names as they are.
 * @returns undefined for URIs of other schemes.
 * @throws TypeError naming the URI and the rule it breaks.
 */
export function parseGcsUri(uri: string): GcsLocation | undefined {
  if (!uri.startsWith('gs://')) return undefined;
  const rest = uri.slice('gs://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const folder = slash < 0 ? '' : rest.slice(slash + 1);
  const prefix = folder.endsWith('/') ? folder.slice(0, -1) : folder;
  const location = { bucket, prefix };
  checkLocation(location, `in ${JSON.stringify(uri)}`);
  return location;
}

/** The object name of `name` under `location`'s prefix, without a double slash. */
export function gcsObjectName(location: GcsLocation, name: string): string {
  return location.prefix === '' ? name : `${location.prefix}/${name}`;
}

/**
 * Creates the Cloud Storage client from the environment:
 * - `GCS_API_ENDPOINT`: another endpoint, such as a regional one or an emulator
 *   (`http://127.0.0.1:4443`); passed as `apiEndpoint`.
 * - `STORAGE_EMULATOR_HOST`: the client's own emulator switch (fake-gcs-server's instructions use
 *   it); honoured as an endpoint too. The client reads it from `process.env` whatever `env` says,
 *   and then sends JSON API calls there while uploads and signed links follow `apiEndpoint`, so
 *   the two may not disagree.
 * - `GOOGLE_CLOUD_PROJECT`: the project.
 * - `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key file (else Application Default
 *   Credentials, such as Cloud Run's metadata server).
 *
 * With an endpoint outside googleapis.com (an emulator) the client sends no credentials, so tests
 * need none; a key file is only needed there to sign links. An endpoint on googleapis.com (a
 * regional or private endpoint) keeps authentication (`useAuthWithCustomEndpoint`).
 * @throws TypeError naming the variable when an endpoint is not an http(s) URL without a path, or
 * when the two endpoint variables disagree.
 */
export function createStorageClient(env: NodeJS.ProcessEnv = process.env): Storage {
  const configured = endpointFrom(env, 'GCS_API_ENDPOINT') ?? endpointFrom(env, 'STORAGE_EMULATOR_HOST');
  const seenByClient = endpointFrom(process.env, 'STORAGE_EMULATOR_HOST');
  if (configured !== undefined && seenByClient !== undefined && configured !== seenByClient) {
    throw new TypeError(
      `Expected GCS_API_ENDPOINT (${configured}) to agree with STORAGE_EMULATOR_HOST (${seenByClient}): ` +
        'the client would send some requests to each; set one of them',
    );
  }
  const options: StorageOptions = {};
  const projectId = nonEmpty(env.GOOGLE_CLOUD_PROJECT);
  if (projectId !== undefined) options.projectId = projectId;
  // Application Default Credentials read the process's own GOOGLE_APPLICATION_CREDENTIALS; naming
  // the file explicitly is only needed for another file, and the auth library deprecates it (it warns).
  const keyFilename = nonEmpty(env.GOOGLE_APPLICATION_CREDENTIALS);
  if (keyFilename !== undefined && keyFilename !== nonEmpty(process.env.GOOGLE_APPLICATION_CREDENTIALS)) options.keyFilename = keyFilename;
  if (configured !== undefined) {
    options.apiEndpoint = configured;
    const host = new URL(configured).hostname;
    options.useAuthWithCustomEndpoint = host === 'googleapis.com' || host.endsWith('.googleapis.com');
  }
  return new Storage(options);
}

/**
 * Writes exports into a Cloud Storage bucket under a prefix (`gs://BUCKET/PREFIX`).
 *
 * Each object is one resumable upload streamed from the caller: no temporary file, at most a few
 * chunks in memory, and the upload's pace is the caller's backpressure. The session is opened with
 * `ifGenerationMatch=0`, so an existing object is never overwritten: opening fails at once when
 * the name is taken, and the upload fails at the end if someone else took it meanwhile. The
 * upload's last request is held back until {@link PendingObject.commit}, so nothing is visible
 * before; a discarded upload's session is cancelled, and an object a failed commit finalized
 * anyway is deleted (that generation only).
 *
 * Permissions: `storage.objects.create`, `storage.objects.get` (for {@link find}) and
 * `storage.objects.delete` (for that clean-up), as in `roles/storage.objectUser` on the bucket.
 */
export class GcsOutputTarget implements OutputTarget {
  /** `gs://BUCKET/PREFIX/`, for messages. */
  readonly description: string;
  /** Where the objects go. */
  readonly location: GcsLocation;
  readonly #storage: Storage;

  /** @throws TypeError when `location` holds an invalid bucket name or prefix. */
  constructor(storage: Storage, location: GcsLocation) {
    checkLocation(location, 'in the output location');
    this.#storage = storage;
    this.location = { bucket: location.bucket, prefix: location.prefix };
    this.description = `gs://${location.bucket}/${location.prefix === '' ? '' : `${location.prefix}/`}`;
  }

  /** The object `name` under the prefix with its metadata, or undefined when there is none. */
  async find(name: string): Promise<StoredObject | undefined> {
    const file = this.#storage.bucket(this.location.bucket).file(this.#objectName(name));
    try {
      const [metadata] = await file.getMetadata();
      return storedObjectOf(this.location.bucket, metadata);
    } catch (error) {
      if (httpStatusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /**
   * Opens the upload session (so a taken name fails here, before any work) and returns the
   * stream into it. Stores `object.contentType`, `object.metadata` and
   * `Content-Disposition: attachment; filename="NAME"`.
   * @throws TypeError for a name that is not a plain file name, or too long with the prefix.
   * @throws Error saying the object already exists.
   */
  async open(object: ObjectDescription): Promise<PendingObject> {
    const objectName = this.#objectName(object.name);
    if (typeof object.contentType !== 'string' || object.contentType === '') {
      throw new TypeError(`Expected a content type for ${JSON.stringify(object.name)}, got ${JSON.stringify(object.contentType)}`);
    }
    for (const [key, value] of Object.entries(object.metadata)) {
      if (typeof value !== 'string') throw new TypeError(`Expected metadata ${JSON.stringify(key)} to be a string, got ${JSON.stringify(value)}`);
    }
    const uri = `gs://${this.location.bucket}/${objectName}`;
    const file = this.#storage.bucket(this.location.bucket).file(objectName);
    const metadata: FileMetadata = {
      contentType: object.contentType,
      contentDisposition: attachmentDisposition(object.name),
      metadata: { ...object.metadata },
    };
    let sessionUri: string;
    try {
      [sessionUri] = await file.createResumableUpload({ metadata, preconditionOpts: NEVER_OVERWRITE });
    } catch (error) {
      throw describeUploadError(error, uri);
    }
    return new GcsPendingObject(file, uri, sessionUri, object.contentType);
  }

  #objectName(name: string): string {
    // The whole name's limit first: with a deep prefix it is the rule a long name breaks.
    const objectName = gcsObjectName(this.location, name);
    if (Buffer.byteLength(objectName) > MAX_OBJECT_NAME_BYTES) {
      throw new TypeError(`Expected an object name of at most ${MAX_OBJECT_NAME_BYTES} bytes, got ${JSON.stringify(objectName)}`);
    }
    // Plain and portable (no control characters among the rest): the object is downloaded as a file of this name.
    if (!isPlainFileName(name)) {
      throw new TypeError(`Expected a plain file name without control characters, got ${JSON.stringify(name)}`);
    }
    return objectName;
  }
}

/**
 * One object being uploaded. {@link stream} forwards each chunk to the client's upload stream and
 * waits for it to be taken (that is the backpressure); ending it does not end the upload, since
 * the upload's end is what makes the object appear: {@link commit} ends it.
 */
class GcsPendingObject implements PendingObject {
  readonly stream: Writable;
  readonly #file: File;
  readonly #uri: string;
  /** The resumable session: a capability to write this object, so it is never logged. */
  readonly #sessionUri: string;
  readonly #upload: Writable;
  #bytesWritten = 0;
  #failure: Error | undefined;
  #settled = false;
  #committed = false;
  #cleanUp: Promise<void> | undefined;

  constructor(file: File, uri: string, sessionUri: string, contentType: string) {
    this.#file = file;
    this.#uri = uri;
    this.#sessionUri = sessionUri;
    // chunkSize stays unset: with it the client copies every chunk to replay it and sends one
    // request per chunk (several times slower); without it one request streams the whole object.
    // The session already carries ifGenerationMatch=0, but the client only retries a failed request
    // (resuming the session) when the write stream is given the precondition as well.
    this.#upload = file.createWriteStream({
      resumable: true,
      uri: sessionUri,
      // The session already holds the metadata; this only spares the client guessing a type.
      contentType,
      validation: 'crc32c',
      preconditionOpts: NEVER_OVERWRITE,
    });
    this.#upload.on('error', (error: unknown) => {
      this.#failure ??= describeUploadError(error, uri);
      // Once the caller's stream finished nobody listens to it any more; commit() reports instead.
      if (!this.stream.destroyed && !this.stream.writableFinished) this.stream.destroy(this.#failure);
    });
    this.stream = new Writable({
      highWaterMark: 256 * 1024,
      write: (chunk: Buffer, encoding, callback) => {
        this.#bytesWritten += chunk.length;
        this.#upload.write(chunk, encoding, (error) => callback(error ? (this.#failure ?? error) : undefined));
      },
      final: (callback) => callback(),
      destroy: (error, callback) => {
        // Destroyed before it finished (an abort, a failed stage): abandon the upload. The client
        // aborts its request only when destroyed with an error.
        if (!this.stream.writableFinished && !this.#upload.destroyed) {
          this.#upload.destroy(error ?? new Error(`Upload to ${uri} abandoned`));
        }
        callback(error);
      },
    });
  }

  async commit(): Promise<StoredObject> {
    if (this.#settled) throw new Error(`${this.#uri} was already committed or discarded`);
    this.#settled = true;
    try {
      await finished(this.stream);
      if (this.#failure !== undefined) throw this.#failure;
      this.#upload.end();
      // Resolves once the final response arrived and the client checked its CRC32C against ours.
      await finished(this.#upload);
      if (this.#failure !== undefined) throw this.#failure;
      const stored = storedObjectOf(this.#file.bucket.name, this.#file.metadata);
      if (stored.bytes !== this.#bytesWritten) {
        throw new Error(`Cloud Storage stored ${stored.bytes} bytes of ${this.#uri} but ${this.#bytesWritten} were written`);
      }
      this.#committed = true;
      return stored;
    } catch (error) {
      const failure = this.#failure ?? describeUploadError(error, this.#uri);
      await this.#removeTraces().catch(() => {});
      throw failure;
    }
  }

  async discard(): Promise<void> {
    this.#settled = true;
    // A committed object is the delivery, not a trace: it stays.
    if (this.#committed) return;
    await this.#removeTraces();
  }

  /**
   * Aborts the upload, then cancels its session or, if it finalized an object anyway (its last
   * response was lost), deletes that generation. Cancelling matters beyond tidiness: a destroyed
   * client upload may still send its pending status query and PUT (and retry them), and that PUT's
   * body never ends; against a cancelled session those requests fail at once.
   */
  #removeTraces(): Promise<void> {
    this.#cleanUp ??= (async () => {
      if (!this.stream.destroyed) this.stream.destroy();
      if (!this.#upload.destroyed) this.#upload.destroy(new Error(`Upload to ${this.#uri} discarded`));
      const status = await querySession(this.#sessionUri);
      if (status.state === 'open') {
        await cancelSession(this.#sessionUri);
      } else if (status.state === 'finalized') {
        const { generation } = status;
        await this.#file.bucket
          .file(this.#file.name, { generation })
          .delete({ ifGenerationMatch: generation, ignoreNotFound: true });
      }
    })();
    return this.#cleanUp;
  }
}

type SessionStatus = { readonly state: 'open' } | { readonly state: 'finalized'; readonly generation: string } | { readonly state: 'gone' };

/**
 * Asks a resumable session how far it got. Session URIs authenticate by themselves (that is how
 * the client uses them too), so no credentials are needed.
 */
async function querySession(sessionUri: string): Promise<SessionStatus> {
  const response = await sessionRequest(sessionUri, { method: 'PUT', headers: { 'Content-Range': 'bytes */*' }, body: '' });
  if (response.status === 308) return { state: 'open' };
  if (response.status === 200 || response.status === 201) {
    const resource = (await response.json()) as { generation?: unknown };
    if (typeof resource.generation !== 'string' && typeof resource.generation !== 'number') {
      throw new Error('Cloud Storage reported a finalized upload without its generation');
    }
    return { state: 'finalized', generation: String(resource.generation) };
  }
  return { state: 'gone' };
}

/** Cancels a session: the service then accepts no more bytes on it (499 is its success answer). */
async function cancelSession(sessionUri: string): Promise<void> {
  await sessionRequest(sessionUri, { method: 'DELETE' });
}

/** One request to a session URI, retried a few times on network errors and 5xx. */
async function sessionRequest(sessionUri: string, init: RequestInit): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(sessionUri, { ...init, signal: AbortSignal.timeout(30_000) });
      if (response.status < 500 || attempt === 3) return response;
      await response.body?.cancel();
    } catch (error) {
      if (attempt === 3) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250 * 4 ** (attempt - 1)));
  }
}

/**
 * A V4-signed GET link to an object, valid for `seconds` from `now`.
 *
 * The signing time and the expiry come from one clock reading (`accessibleAt` and `expires`):
 * the client computes `X-Goog-Expires` as the difference of the two, each truncated to seconds,
 * so two readings would turn 604800 into 604799. The link points at the client's `apiEndpoint`
 * (storage.googleapis.com, or the configured endpoint).
 *
 * With a service-account key (`GOOGLE_APPLICATION_CREDENTIALS`) the client signs locally. Without
 * one (Cloud Run's metadata-server credentials) it signs through the IAM Credentials API's
 * `signBlob`, which needs the permission `iam.serviceAccounts.signBlob` on the runtime service
 * account itself: grant that account `roles/iam.serviceAccountTokenCreator` on itself.
 *
 * @throws TypeError for `seconds` outside 1 to 604800, an invalid `now`, or a generation that is
 * not a decimal string.
 */
export async function signReadUrl(storage: Storage, object: GcsObjectReference, seconds: number, now: Date = new Date()): Promise<SignedReadUrl> {
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_SIGNED_URL_SECONDS) {
    throw new TypeError(`Expected seconds to be a whole number from 1 to ${MAX_SIGNED_URL_SECONDS} (7 days, the V4 maximum), got ${seconds}`);
  }
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError(`Expected now to be a valid Date, got ${String(now)}`);
  if (object.generation !== undefined && !/^\d+$/.test(object.generation)) {
    throw new TypeError(`Expected generation to be a decimal string, got ${JSON.stringify(object.generation)}`);
  }
  // Whole seconds, as the signature carries them: expiresAt is then exactly what the service enforces.
  const signedAt = Math.floor(now.getTime() / 1000) * 1000;
  const expiresAt = new Date(signedAt + seconds * 1000);
  // The generation goes in as a query parameter rather than a File option, which would turn it into a number.
  const [url] = await storage
    .bucket(object.bucket)
    .file(object.object)
    .getSignedUrl({
      version: 'v4',
      action: 'read',
      accessibleAt: new Date(signedAt),
      expires: expiresAt,
      ...(object.generation === undefined ? {} : { queryParams: { generation: object.generation } }),
    });
  return { url, expiresAt };
}

/**
 * When the object (that generation, if given) was created: its `timeCreated`, which the bucket's
 * lifecycle `age` counts from. Needs `storage.objects.get`, as signing a link to it does.
 * @returns undefined when there is no such object (or no such generation).
 * @throws Error when Cloud Storage answers without a valid `timeCreated`, or for any other failure.
 */
export async function readObjectCreationTime(storage: Storage, object: GcsObjectReference): Promise<Date | undefined> {
  if (object.generation !== undefined && !/^\d+$/.test(object.generation)) {
    throw new TypeError(`Expected generation to be a decimal string, got ${JSON.stringify(object.generation)}`);
  }
  let metadata: FileMetadata;
  try {
    // As a query parameter, the generation stays a string (a File option would make it a number).
    [metadata] = await storage
      .bucket(object.bucket)
      .file(object.object)
      .getMetadata(object.generation === undefined ? {} : ({ generation: object.generation } as Record<string, string>));
  } catch (error) {
    if (httpStatusOf(error) === 404) return undefined;
    throw error;
  }
  const created = typeof metadata.timeCreated === 'string' ? new Date(metadata.timeCreated) : undefined;
  if (created === undefined || Number.isNaN(created.getTime())) {
    throw new Error(`Cloud Storage answered without a valid timeCreated for gs://${object.bucket}/${object.object}: ${JSON.stringify(metadata.timeCreated)}`);
  }
  return created;
}

function storedObjectOf(bucket: string, metadata: FileMetadata): StoredObject {
  const { name, generation, size } = metadata;
  if (typeof name !== 'string' || generation === undefined || size === undefined) {
    throw new Error(`Cloud Storage answered without the name, generation or size of an object in ${bucket}`);
  }
  const custom: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata.metadata ?? {})) {
    if (value !== null && value !== undefined) custom[key] = String(value);
  }
  return {
    uri: `gs://${bucket}/${name}`,
    bytes: Number(size),
    gcs: { bucket, object: name, generation: String(generation) },
    metadata: custom,
  };
}

/** Turns what the client rejects with into an Error; a failed precondition means the name is taken. */
function describeUploadError(error: unknown, uri: string): Error {
  if (httpStatusOf(error) === 412) return new Error(`${uri} already exists; exports never overwrite an object`, { cause: error });
  if (error instanceof Error) return error;
  // For an error in a final response's body the client rejects with that body's `error` object.
  return new Error(`Upload to ${uri} failed: ${JSON.stringify(error)}`, { cause: error });
}

/** The HTTP status in whichever field the client's error kind keeps it. */
function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const fields = error as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const candidate of [fields.code, fields.status, fields.response?.status]) {
    if (typeof candidate === 'number') return candidate;
    if (typeof candidate === 'string' && /^\d{3}$/.test(candidate)) return Number(candidate);
  }
  return undefined;
}

/**
 * `attachment; filename="NAME"`; a name that cannot be a quoted ASCII string also gets the
 * RFC 6266 `filename*` form, with an ASCII stand-in for old browsers.
 */
function attachmentDisposition(name: string): string {
  if (/^[\x20-\x7e]*$/.test(name) && !/["\\]/.test(name)) return `attachment; filename="${name}"`;
  const fallback = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** `variable` from `env` as a URL origin, or undefined when unset. */
function endpointFrom(env: NodeJS.ProcessEnv, variable: string): string | undefined {
  const value = nonEmpty(env[variable]);
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw new TypeError(`Expected ${variable} to be an http(s) URL without a path, such as http://127.0.0.1:4443, got ${JSON.stringify(value)}`);
  }
  return url.origin;
}

/** Checks a bucket name against Cloud Storage's naming rules and a prefix against object-name rules. */
function checkLocation(location: GcsLocation, where: string): void {
  const { bucket, prefix } = location;
  const problem = bucketNameProblem(bucket);
  if (problem !== undefined) throw new TypeError(`Invalid bucket name ${JSON.stringify(bucket)} ${where}: ${problem}`);
  if (typeof prefix !== 'string') throw new TypeError(`Expected the prefix ${where} to be a string, got ${JSON.stringify(prefix)}`);
  if (prefix === '') return;
  if (prefix.startsWith('/') || prefix.endsWith('/') || prefix.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new TypeError(`Invalid prefix ${JSON.stringify(prefix)} ${where}: folders may not be empty, "." or ".."`);
  }
  if (/\p{Cc}/u.test(prefix)) throw new TypeError(`Invalid prefix ${JSON.stringify(prefix)} ${where}: control characters are not allowed`);
  if (Buffer.byteLength(prefix) > MAX_OBJECT_NAME_BYTES - 256) {
    throw new TypeError(`Invalid prefix ${JSON.stringify(prefix)} ${where}: longer than ${MAX_OBJECT_NAME_BYTES - 256} bytes leaves no room for file names`);
  }
}

/** Why `name` is not a valid bucket name (https://cloud.google.com/storage/docs/buckets#naming), or undefined. */
function bucketNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'a bucket name is required';
  if (!/^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(name)) {
    return 'use lowercase letters, digits, "-", "_" and ".", starting and ending with a letter or digit';
  }
  const parts = name.split('.');
  if (parts.length === 1 && (name.length < 3 || name.length > 63)) return 'it must be 3 to 63 characters long';
  if (parts.length > 1 && (name.length > 222 || parts.some((part) => part.length === 0 || part.length > 63))) {
    return 'with dots it may be up to 222 characters long, each dot-separated part 1 to 63';
  }
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'it may not look like an IP address';
  if (name.startsWith('goog') || /g[o0][o0]g[l1]e/.test(name)) return 'it may not start with "goog" or contain "google"';
  return undefined;
}
