import type { Writable } from 'node:stream';

/** Where a committed object lives in Cloud Storage. */
export interface GcsObjectLocation {
  readonly bucket: string;
  readonly object: string;
  /** The object's generation, as a decimal string (it exceeds 2^53). */
  readonly generation: string;
}

/** What a sink reports once the far side has confirmed the object. */
export interface StoredObject {
  /** Where the object is: `file:///...` or `gs://bucket/object`. */
  readonly uri: string;
  /** Its size in bytes, as stored. */
  readonly bytes: number;
  /** Set for Cloud Storage objects. */
  readonly gcs?: GcsObjectLocation;
  /** The custom metadata stored with the object, when the storage keeps any (Cloud Storage does). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** What is known about an object before its bytes are written. */
export interface ObjectDescription {
  /** A plain file name, no folders; unique per request. */
  readonly name: string;
  readonly contentType: string;
  /** Custom metadata stored with the object where the storage supports it. */
  readonly metadata: Readonly<Record<string, string>>;
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
  /** Starts writing an object. */
  open(object: ObjectDescription): Promise<PendingObject>;
  /** The committed object called `name`, if there is one: lets a rerun skip work already done. */
  find(name: string): Promise<StoredObject | undefined>;
  /**
   * Checks, before any work and leaving nothing behind, that objects can be written here at all,
   * so that a target that never can fails fast (a local folder that is a file, read-only, or
   * under /proc). Targets that cannot tell without writing leave it out.
   */
  check?(): Promise<void>;
}
