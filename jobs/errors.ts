/**
 * A request that can never succeed as asked: a bad value, an unknown merchant, a range too long.
 * The CLI exits with code 2 for it and writes nothing; a queue acks it instead of retrying.
 */
export class InvalidRequestError extends Error {
  /** The request field at fault, as the user wrote it (`from`, `filters.statuses`, `--merchant`...). */
  readonly field: string;

  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'InvalidRequestError';
    this.field = field;
  }
}

/** True for the error `stream/promises` pipeline and AbortSignal-aware APIs reject with on abort. */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || (error as { code?: unknown }).code === 'ABORT_ERR');
}
