import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { constants } from 'node:fs';
import { access, link, mkdir, open, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import type { ObjectDescription, OutputTarget, PendingObject, StoredObject } from './output.js';

/** The longest file name, in UTF-8 bytes, that Linux, macOS and Windows file systems all take. */
export const MAX_FILE_NAME_BYTES = 255;

/**
 * Windows device names, reserved in every folder whatever the extension (`CON`, `nul.txt`, `COM1.zip`).
 * Superscript digits count too (`COM¹`).
 */
const WINDOWS_RESERVED = /^(?:CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(?:\..*)?$/i;

/**
 * True for names that stay inside their folder and are portable: no separators, not `.`/`..`, not
 * hidden (a leading `.` is how the sinks name their own temporary files), at most
 * {@link MAX_FILE_NAME_BYTES} UTF-8 bytes, well-formed Unicode, and nothing Windows, macOS or
 * Cloud Storage refuses or shows misleadingly: no control or format characters (NUL, CR, LF, the
 * right-to-left override U+202E, zero-width spaces), none of `<>:"|?*`, no trailing dot or space,
 * no Windows device name.
 */
export function isPlainFileName(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) <= MAX_FILE_NAME_BYTES &&
    // \p{Cs}: a lone surrogate, which no UTF-8 name can hold.
    !/[/\\<>:"|?*\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u.test(name) &&
    !name.startsWith('.') &&
    !/[. ]$/.test(name) &&
    !WINDOWS_RESERVED.test(name)
  );
}

/**
 * Why an output folder cannot be used. `usage` is true when the path itself is the problem and
 * asking again cannot help: it is (or lies inside) a file, the file system refuses folders there
 * (/proc, /sys), it is read-only, or permission is denied. A full disk or an I/O error is not.
 */
export class OutputFolderError extends Error {
  /** The folder asked for. */
  readonly path: string;
  /** The system error code behind it (`ENOTDIR`, `EROFS`...), when there is one. */
  readonly code: string | undefined;
  readonly usage: boolean;

  constructor(message: string, path: string, code: string | undefined, usage: boolean) {
    super(message);
    this.name = 'OutputFolderError';
    this.path = path;
    this.code = code;
    this.usage = usage;
  }
}

const USAGE_CODES = new Set(['ENOTDIR', 'EEXIST', 'ENOENT', 'EROFS', 'EACCES', 'EPERM', 'ENAMETOOLONG', 'ELOOP']);

const REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'the file system does not allow creating a folder there',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many symbolic links',
};

/** Describes a failed file-system call on the way to `directory` as an {@link OutputFolderError}. */
function folderError(directory: string, action: string, error: unknown): OutputFolderError {
  if (error instanceof OutputFolderError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const reason = (code !== undefined ? REASONS[code] : undefined) ?? (error as Error).message;
  return new OutputFolderError(`cannot ${action} ${directory}: ${reason}${code === undefined ? '' : ` (${code})`}`, directory, code, code !== undefined && USAGE_CODES.has(code));
}

/**
 * The nearest existing ancestor of `directory` (or itself) and the folders below it that are
 * missing, outermost first.
 * @throws OutputFolderError when the path, or the ancestor found, is not a folder.
 */
async function existingAncestor(directory: string): Promise<{ existing: string; missing: string[] }> {
  const missing: string[] = [];
  let current = directory;
  for (;;) {
    let isDirectory: boolean | undefined;
    try {
      isDirectory = (await stat(current)).isDirectory();
    } catch (error) {
      // ENOTDIR: some ancestor is a file; walking up finds it and says so.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw folderError(directory, 'use the folder', error);
    }
    if (isDirectory === true) return { existing: current, missing };
    if (isDirectory === false) {
      const where = current === directory ? `${directory} is not a folder (it is a file)` : `${current} is not a folder (it is a file), so ${directory} cannot be created`;
      throw new OutputFolderError(where, directory, 'ENOTDIR', true);
    }
    missing.unshift(current);
    const parent = dirname(current);
    if (parent === current) throw new OutputFolderError(`cannot create the folder ${directory}: no part of the path exists`, directory, 'ENOENT', true);
    current = parent;
  }
}

/**
 * Creates `directory` and the folders missing above it, one `mkdir` at a time, and returns the
 * folders it created. Not `mkdir -p` (`recursive: true`): on Node 24 that never returns under
 * /proc, where mkdir fails with ENOENT although the parent exists, and it retries forever. On
 * failure the folders this call created are removed again.
 * @throws OutputFolderError naming the folder and the reason.
 */
export async function ensureDirectory(directory: string): Promise<string[]> {
  const { missing } = await existingAncestor(directory);
  const created: string[] = [];
  try {
    for (const path of missing) {
      try {
        await mkdir(path);
        created.push(path);
      } catch (error) {
        // Created meanwhile by someone else (a concurrent export): fine if it is a folder.
        if ((error as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(path)).isDirectory()) continue;
        throw error;
      }
    }
  } catch (error) {
    for (const path of created.reverse()) await rmdir(path).catch(() => {});
    throw folderError(directory, 'create the folder', error);
  }
  return created;
}

/**
 * Checks, leaving nothing behind, that files can be written in `directory`: an existing folder
 * must be writable; otherwise its first missing folder is created and removed again, which is the
 * only sure test of whether the file system allows it (/proc says ENOENT, /sys EPERM).
 * @throws OutputFolderError naming the folder and the reason.
 */
export async function checkDirectory(directory: string): Promise<void> {
  const { existing, missing } = await existingAncestor(directory);
  const first = missing[0];
  if (first === undefined) {
    try {
      await access(existing, constants.W_OK);
    } catch (error) {
      throw folderError(directory, 'write to the folder', error);
    }
    return;
  }
  try {
    await mkdir(first);
  } catch (error) {
    throw folderError(directory, 'create the folder', error);
  }
  await rmdir(first);
}

/**
 * Writes exports into a local folder (`file://DIR`). An object is written under a hidden temporary
 * name in the same folder, flushed to disk, and only then linked to its final name, which fails
 * rather than overwrite an existing file; a discarded object leaves nothing behind.
 */
export class FileOutputTarget implements OutputTarget {
  readonly directory: string;
  readonly description: string;
  /** The flag or variable the folder came from (`--out`, `OUTPUT_URI`), for messages. */
  readonly field: string | undefined;

  constructor(directory: string, field?: string) {
    this.directory = resolve(directory);
    this.description = pathToFileURL(this.directory).href;
    this.field = field;
  }

  /**
   * Checks before any work that the folder can take files, leaving nothing behind (see {@link checkDirectory}).
   * @throws OutputFolderError naming the folder and the reason.
   */
  async check(): Promise<void> {
    await checkDirectory(this.directory);
  }

  async find(name: string): Promise<StoredObject | undefined> {
    if (!isPlainFileName(name)) throw new TypeError(`Expected a plain file name, got ${JSON.stringify(name)}`);
    const path = join(this.directory, name);
    try {
      const { size } = await stat(path);
      return { uri: pathToFileURL(path).href, bytes: size };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Local files keep no metadata: `object.metadata` and the content type are not stored. */
  async open(object: ObjectDescription): Promise<PendingObject> {
    const { name } = object;
    if (!isPlainFileName(name)) throw new TypeError(`Expected a plain file name, got ${JSON.stringify(name)}`);
    try {
      await ensureDirectory(this.directory);
    } catch (error) {
      if (error instanceof OutputFolderError && this.field !== undefined) {
        throw new OutputFolderError(`${this.field}: ${error.message}`, error.path, error.code, error.usage);
      }
      throw error;
    }
    const finalPath = join(this.directory, name);
    const temporaryPath = join(this.directory, `.${name}.${randomBytes(6).toString('hex')}.partial`);
    // `flush` fsyncs before close, so a committed file survives a crash of the machine.
    const stream = createWriteStream(temporaryPath, { flags: 'wx', flush: true, highWaterMark: 256 * 1024 });
    // A write still in flight when the stream is destroyed completes with ERR_STREAM_DESTROYED:
    // unheard, that is an uncaught exception and the stream never emits 'close', so discard would
    // never return. Errors still reach the pipeline (its own listener) and commit (`finished`).
    stream.on('error', () => {});
    // Created before anything can discard it, so that discarding always finds the file to remove.
    await once(stream, 'open');
    let settled = false;
    const discard = async (): Promise<void> => {
      settled = true;
      if (!stream.destroyed) stream.destroy();
      await closed(stream);
      await unlink(temporaryPath).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    };
    const commit = async (): Promise<StoredObject> => {
      if (settled) throw new Error(`${name} was already committed or discarded`);
      settled = true;
      try {
        await finished(stream);
        await closed(stream);
        await link(temporaryPath, finalPath);
        await unlink(temporaryPath);
        await syncDirectory(this.directory);
        const { size } = await stat(finalPath);
        return { uri: pathToFileURL(finalPath).href, bytes: size };
      } catch (error) {
        await unlink(temporaryPath).catch(() => {});
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new Error(`${finalPath} already exists; exports never overwrite a file`);
        }
        throw error;
      }
    };
    return { stream, commit, discard };
  }
}

/**
 * Resolves once the file descriptor is closed. Unlike `events.once(stream, 'close')` it does not
 * reject when the stream reports an error first: whoever destroyed it already knows.
 */
async function closed(stream: WriteStream): Promise<void> {
  if (stream.closed) return;
  await new Promise<void>((resolve) => stream.once('close', () => resolve()));
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Parses an output URI. `file://DIR` takes a relative (`file://./exports`) or absolute
 * (`file:///srv/exports`) folder, percent-decoded.
 * @throws TypeError naming the URI and what is accepted: an empty folder, bad percent-encoding, NUL.
 */
export function parseFileOutputUri(uri: string): string | undefined {
  if (!uri.startsWith('file://')) return undefined;
  let path: string;
  try {
    path = decodeURIComponent(uri.slice('file://'.length));
  } catch {
    throw new TypeError(`Expected a folder after file:// in ${JSON.stringify(uri)}, which is not a valid percent-encoded path`);
  }
  if (path.length === 0) throw new TypeError(`Expected a folder after file:// in ${JSON.stringify(uri)}`);
  // No file system takes NUL in a name; Node would throw deep inside the export instead.
  if (path.includes('\0')) throw new TypeError(`Expected a folder without NUL characters after file:// in ${JSON.stringify(uri)}`);
  return path;
}
