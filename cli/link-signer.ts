import type { Storage } from '@google-cloud/storage';
import type { ReadyAnnouncement } from '../jobs/announcement.js';
import { createStorageClient, signReadUrl, type SignedReadUrl } from '../sinks/gcs.js';

/**
 * Makes the download link of an announced export: a V4-signed GET URL of exactly the announced
 * object generation, valid for the announcement's `linkSeconds` from now (7 days for conversation
 * exports). A local `file://` export (the demo) is linked as it is.
 */
export function createLinkSigner(
  env: NodeJS.ProcessEnv = process.env,
  clock: () => Date = () => new Date(),
): (announcement: ReadyAnnouncement) => Promise<SignedReadUrl> {
  let storage: Storage | undefined;
  return async (announcement) => {
    const now = clock();
    if (announcement.bucket === null) {
      return { url: announcement.uri, expiresAt: new Date(now.getTime() + announcement.linkSeconds * 1000) };
    }
    storage ??= createStorageClient(env);
    return await signReadUrl(
      storage,
      { bucket: announcement.bucket, object: announcement.object, generation: announcement.generation },
      announcement.linkSeconds,
      now,
    );
  };
}
