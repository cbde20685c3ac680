import { InvalidRequestError } from '../jobs/errors.js';
import { FileOutputTarget, OutputFolderError, parseFileOutputUri } from './file.js';
import { createStorageClient, GcsOutputTarget, parseGcsUri } from './gcs.js';
import type { OutputTarget } from './output.js';

/**
 * Turns an output URI into a target: `file://DIR` (relative or absolute folder) or
 * `gs://BUCKET/PREFIX` (a Cloud Storage folder; client configured from the environment).
 * @throws InvalidRequestError for anything else, naming what is accepted.
 */
export function outputTargetFor(uri: string, field = 'out', env: NodeJS.ProcessEnv = process.env): OutputTarget {
  try {
    const directory = parseFileOutputUri(uri);
    if (directory !== undefined) return new FileOutputTarget(directory, field);
    const location = parseGcsUri(uri);
    if (location !== undefined) return new GcsOutputTarget(createStorageClient(env), location);
  } catch (error) {
    if (error instanceof TypeError) throw new InvalidRequestError(field, error.message);
    throw error;
  }
  throw new InvalidRequestError(field, `expected file://DIR or gs://BUCKET/PREFIX, got ${JSON.stringify(uri)}`);
}

/**
 * Runs the target's own check ({@link OutputTarget.check}) before any work: a folder that can never
 * take files (a file, read-only, under /proc or /sys, no permission) is the flag's fault, an
 * InvalidRequestError naming `field` (exit 2); nothing is left behind either way.
 * @throws InvalidRequestError naming `field`, the folder and the reason.
 */
export async function checkOutputTarget(target: OutputTarget, field: string): Promise<void> {
  try {
    await target.check?.();
  } catch (error) {
    if (error instanceof OutputFolderError && error.usage) throw new InvalidRequestError(field, error.message);
    if (error instanceof OutputFolderError) throw new Error(`${field}: ${error.message}`);
    throw error;
  }
}
