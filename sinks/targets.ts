import { InvalidRequestError } from '../jobs/errors.js';
import { FileOutputTarget, parseFileOutputUri } from './file.js';
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
    if (directory !== undefined) return new FileOutputTarget(directory);
    const location = parseGcsUri(uri);
    if (location !== undefined) return new GcsOutputTarget(createStorageClient(env), location);
  } catch (error) {
    if (error instanceof TypeError) throw new InvalidRequestError(field, error.message);
    throw error;
  }
  throw new InvalidRequestError(field, `expected file://DIR or gs://BUCKET/PREFIX, got ${JSON.stringify(uri)}`);
}
