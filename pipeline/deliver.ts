import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PendingObject, StoredObject } from '../sinks/output.js';

/**
 * Streams `source` through `stages` into a pending object and commits it: the object becomes
 * visible only when every stage finished, `beforeCommit` did not throw, and the sink confirmed. On any failure or abort every
 * stage is destroyed (by `pipeline`) and the object is discarded, so nothing partial is left.
 */
export async function deliverStream(
  source: Readable,
  stages: readonly Transform[],
  object: PendingObject,
  signal: AbortSignal,
  beforeCommit: () => void = () => {},
): Promise<StoredObject> {
  try {
    await pipeline([source, ...stages, object.stream], { signal });
    signal.throwIfAborted();
    beforeCommit();
    return await object.commit();
  } catch (error) {
    await object.discard().catch(() => {});
    throw error;
  }
}
