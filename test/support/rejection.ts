import { InvalidRequestError } from '../../jobs/errors.js';

/** The InvalidRequestError `work` throws; fails the test if it throws anything else or nothing. */
export function rejection(work: () => unknown): InvalidRequestError {
  try {
    work();
  } catch (error) {
    if (error instanceof InvalidRequestError) return error;
    throw error;
  }
  throw new Error('expected an InvalidRequestError, but the value was accepted');
}

/** {@link rejection} for work that resolves or rejects. */
export async function resolveRejection(work: () => Promise<unknown>): Promise<InvalidRequestError> {
  try {
    await work();
  } catch (error) {
    if (error instanceof InvalidRequestError) return error;
    throw error;
  }
  throw new Error('expected an InvalidRequestError, but the request resolved');
}
