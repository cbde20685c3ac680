import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { link, mkdir, open, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import type { ObjectDescription, OutputTarget, PendingObject, StoredObject } from './output.js';

/** True for names that stay inside their folder: no separators, no `.`/`..`, no hidden files. */
export function isPlainFileName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !/[/\\\0]/.test(name) && !name.startsWith('.');
}

/**
 * Writes exports into a local folder (`file://DIR`). An object is written under a hidden temporary
 * name in the same folder, flushed to disk, and only then linked to its final name, which fails
 * rather than overwrite an existing file; a discarded object leaves nothing behind.
 */
export class FileOutputTarget implements OutputTarget {
  readonly directory: string;
  readonly description: string;

  constructor(directory: string) {
    this.directory = resolve(directory);
    this.description = pathToFileURL(this.directory).href;
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
    await mkdir(this.directory, { recursive: true });
    const finalPath = join(this.directory, name);
    const temporaryPath = join(this.directory, `.${name}.${randomBytes(6).toString('hex')}.partial`);
    // `flush` fsyncs before close, so a committed file survives a crash of the machine.
    const stream = createWriteStream(temporaryPath, { flags: 'wx', flush: true, highWaterMark: 256 * 1024 });
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
 * (`file:///srv/exports`) folder.
 * @throws TypeError naming the URI and what is accepted.
 */
export function parseFileOutputUri(uri: string): string | undefined {
  if (!uri.startsWith('file://')) return undefined;
  const path = decodeURIComponent(uri.slice('file://'.length));
  if (path.length === 0) throw new TypeError(`Expected a folder after file:// in ${JSON.stringify(uri)}`);
  return path;
}
