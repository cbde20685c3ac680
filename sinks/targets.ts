import { InvalidRequestError } from '../jobs/errors.js';
import { FileOutputTarget, parseFileOutputUri } from './file.js';
import type { OutputTarget } from './output.js';

/**
 * Turns an output URI into a target: `file://DIR` (relative or absolute folder).
 * @throws InvalidRequestError for anything else, naming what is accepted.
 */
export function outputTargetFor(uri: string, field = 'out'): OutputTarget {
  let directory: string | undefined;
  try {
    directory = parseFileOutputUri(uri);
  } catch (error) {
    throw new InvalidRequestError(field, (error as Error).message);
  }
  if (directory !== undefined) return new FileOutputTarget(directory);
  throw new InvalidRequestError(field, `expected file://DIR, got ${JSON.stringify(uri)}`);
}
