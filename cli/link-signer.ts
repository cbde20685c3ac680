import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Storage } from '@google-cloud/storage';
import type { ReadyAnnouncement } from '../jobs/announcement.js';
import { exportRetentionDays, LinkUnavailableError, linkWindow } from '../jobs/mailer/link-window.js';
import { createStorageClient, readObjectCreationTime, signReadUrl, type SignedReadUrl } from '../sinks/gcs.js';

/** When the local file was written, or undefined when it is gone. */
async function fileCreationTime(uri: string): Promise<Date | undefined> {
  try {
    // The modification time: an export is written once, and unlike the birth time it exists on
    // every file system (and is what a `find -mtime` clean-up of the folder goes by).
    return (await stat(fileURLToPath(uri))).mtime;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Makes the download link of an announced export: a V4-signed GET URL of exactly the announced
 * object generation, valid for the announcement's `linkSeconds` from now (7 days for conversation
 * exports, 24 hours for stop-slots) but never past the object's deletion by the bucket's lifecycle,
 * its creation (`timeCreated`) + `EXPORT_RETENTION_DAYS` (default 8). A local `file://` export (the
 * demo) is linked as it is, by the same rule with the file's modification time.
 *
 * Reads the object's metadata before signing (`storage.objects.get`, which the link needs anyway).
 *
 * @throws InvalidRequestError (at once, not per link) for a bad `EXPORT_RETENTION_DAYS`.
 * The returned function rejects with a {@link LinkUnavailableError} when the object (that
 * generation) is gone or has less than an hour left: no link is worth e-mailing then.
 */
export function createLinkSigner(
  env: NodeJS.ProcessEnv = process.env,
  clock: () => Date = () => new Date(),
): (announcement: ReadyAnnouncement) => Promise<SignedReadUrl> {
  const retentionDays = exportRetentionDays(env);
  let storage: Storage | undefined;
  /** The link's window for an object created at `created` (undefined: gone), or why there is none. */
  const usableWindow = (announcement: ReadyAnnouncement, created: Date | undefined, now: Date) => {
    if (created === undefined) throw LinkUnavailableError.gone(announcement.uri);
    const window = linkWindow({ now, linkSeconds: announcement.linkSeconds, objectCreatedAt: created, retentionDays });
    if (!window.usable) throw LinkUnavailableError.expiring(announcement.uri, window.deletedAt, now, retentionDays);
    return window;
  };
  return async (announcement) => {
    const now = clock();
    if (announcement.bucket === null) {
      const window = usableWindow(announcement, await fileCreationTime(announcement.uri), now);
      return { url: announcement.uri, expiresAt: window.expiresAt };
    }
    const client = (storage ??= createStorageClient(env));
    const reference = { bucket: announcement.bucket, object: announcement.object, generation: announcement.generation };
    const window = usableWindow(announcement, await readObjectCreationTime(client, reference), now);
    return await signReadUrl(client, reference, window.seconds, now);
  };
}
