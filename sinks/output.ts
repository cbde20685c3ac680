import type { Writable } from 'node:stream';

/** What a sink reports once the far side has confirmed the object. */
export interface StoredObject {
  /** Where the object is: `file:///...` or `gs://bucket/object`. */
  readonly uri: string;
  /** Its size in bytes, as stored. */
  readonly bytes: number;
}

/**
 * One object being written. Delivery contract: nothing is visible at {@link StoredObject.uri} until
 * {@link commit} resolved, and after {@link discard} (or a failed commit) nothing is left behind.
 * Exactly one of the two must be called.
 */
export interface PendingObject {
  /** Where the bytes go; the caller pipes into it and waits for it to finish. */
  readonly stream: Writable;
  /** Makes the object visible; resolves only after the storage confirmed it. Never overwrites. */
  commit(): Promise<StoredObject>;
  /** Removes whatever was written. Safe to call more than once. */
  discard(): Promise<void>;
}

/** A place exports are written to, such as a local folder or a Cloud Storage prefix. */
export interface OutputTarget {
  /** The target as the user gave it, for messages. */
  readonly description: string;
  /** Starts writing the object `name` (a plain file name, no folders). */
  open(name: string): Promise<PendingObject>;
}
