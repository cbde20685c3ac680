import pg from 'pg';

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
    max: options.max ?? 4,
  });
  pool.on('error', onIdleError);
  return pool;
}

/** Runs `work` with a pooled client and always gives it back; a client that failed is destroyed. */
export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await work(client);
  } catch (error) {
    broken = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    client.release(broken);
  }
}
