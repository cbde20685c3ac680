import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileOutputTarget, isPlainFileName } from './file.js';
import type { ObjectDescription, OutputTarget, PendingObject, StoredObject } from './output.js';

/** The hidden file next to `name` that holds its metadata: `.NAME.metadata.json`. */
export function metadataFileName(name: string): string {
  return `.${name}.metadata.json`;
}

/**
 * Gives a local folder what Cloud Storage has natively: metadata stored with each object, so that
 * `find` returns it and a rerun can recognise its own zip (see `runConversationExport`). The
 * metadata goes into a hidden `.NAME.metadata.json` written (atomically) just before the object is
 * committed; it only counts while the object exists, so one left by a failed commit is harmless
 * (and is removed). Any other target is returned unchanged.
 */
export function withLocalMetadata(target: OutputTarget): OutputTarget {
  if (!(target instanceof FileOutputTarget)) return target;
  const directory = target.directory;
  const metadataPath = (name: string): string => {
    if (!isPlainFileName(name)) throw new TypeError(`Expected a plain file name, got ${JSON.stringify(name)}`);
    return join(directory, metadataFileName(name));
  };
  return {
    description: target.description,
    check: () => target.check(),
    async find(name: string): Promise<StoredObject | undefined> {
      const found = await target.find(name);
      if (found === undefined) return undefined;
      let text: string;
      try {
        text = await readFile(metadataPath(name), 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return found;
        throw error;
      }
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return found;
      const metadata = Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
      return { ...found, metadata };
    },
    async open(object: ObjectDescription): Promise<PendingObject> {
      const pending = await target.open(object);
      const path = metadataPath(object.name);
      return {
        stream: pending.stream,
        discard: () => pending.discard(),
        async commit(): Promise<StoredObject> {
          const temporary = `${path}.${randomBytes(6).toString('hex')}.partial`;
          try {
            await writeFile(temporary, JSON.stringify(object.metadata), { flag: 'wx', flush: true });
            await rename(temporary, path);
          } catch (error) {
            await unlink(temporary).catch(() => {});
            await pending.discard();
            throw error;
          }
          try {
            const stored = await pending.commit();
            return { ...stored, metadata: object.metadata };
          } catch (error) {
            // The commit failed (or the object already existed): this metadata does not describe it.
            if (!((error as Error).message ?? '').includes('already exists')) await unlink(path).catch(() => {});
            throw error;
          }
        },
      };
    },
  };
}
