import pg from 'pg';

/** The connections a pool may open unless its owner sizes it. */
export const DEFAULT_POOL_SIZE = 4;

/** Options for {@link createPool}. */
export interface PoolOptions {
  /** Shown in `pg_stat_activity.application_name`, so operators can tell our sessions apart. */
  readonly applicationName?: string;
  /** Upper bound on concurrent connections; every concurrent I/O in this project is bounded. */
  readonly max?: number;
}

/**
 * Creates a bounded connection pool for a PostgreSQL URL.
 *
 * Errors of idle clients (a server restart, a terminated backend) are logged by the pool's owner
 * through `onIdleError` instead of crashing the process, which is what node-postgres does by default.
 */
export function createPool(
  connectionString: string,
  options: PoolOptions = {},
  onIdleError: (error: Error) => void = () => {},
): pg.Pool {
  if (typeof connectionString !== 'string' || connectionString.length === 0) {
    throw new TypeError('Expected `connectionString` to be a non-empty PostgreSQL URL');
  }
  const pool = new pg.Pool({
    connectionString,
    application_name: options.applicationName ?? 'audit-export',
    max: options.max ?? DEFAULT_POOL_SIZE,
  });
  pool.on('error', onIdleError);
  return pool;
}

/**
 * Borrows a client from the pool with an `error` listener attached while it is out: node-postgres
 * emits `error` on a checked-out client when its backend dies (`pg_terminate_backend`, a restart),
 * and an unheard `error` event crashes the process. The query in flight fails on its own; the
 * listener only records that the connection is dead, so that {@link CheckedOutClient.release}
 * destroys it instead of returning it to the pool.
 */
export interface CheckedOutClient {
  readonly client: pg.PoolClient;
  /** The error the connection reported while checked out, if any. */
  connectionError(): Error | undefined;
  /** Gives the client back; destroys it when `destroy` is set or the connection failed. */
  release(destroy?: boolean): void;
}

/** Borrows a client (see {@link CheckedOutClient}). */
export async function checkOut(pool: pg.Pool): Promise<CheckedOutClient> {
  const client = await pool.connect();
  let failure: Error | undefined;
  const onError = (error: Error): void => {
    failure ??= error;
  };
  client.on('error', onError);
  let released = false;
  return {
    client,
    connectionError: () => failure,
    release(destroy = false) {
      if (released) return;
      released = true;
      client.off('error', onError);
      client.release(destroy || failure !== undefined ? (failure ?? true) : undefined);
    },
  };
}

/** Runs `work` with a pooled client and always gives it back; a client that failed is destroyed. */
export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const borrowed = await checkOut(pool);
  let failed = false;
  try {
    return await work(borrowed.client);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    borrowed.release(failed);
  }
}
