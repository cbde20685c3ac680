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
 * How long {@link createPool}'s `end()` waits for the server to close the connections it was asked
 * to close; a connection still open then is closed from this side.
 */
export const DISCONNECT_TIMEOUT_MS = 5000;

/**
 * A pool whose `end()` resolves once every connection is closed, not merely asked to close.
 * pg-pool's own `end()` resolves as soon as it has sent each idle client its Terminate message, so
 * a server stopped right after (the embedded PostgreSQL of the demo and the CLI) still had their
 * backends, terminated them with `57P01`, and the pool reported each as a failed idle connection.
 */
class ClosingPool extends pg.Pool {
  /** Connected clients whose sockets are not closed yet: pg-pool emits `remove` once a client's `end()` is done. */
  readonly #open = new Set<pg.PoolClient>();
  #allClosed: (() => void) | undefined;

  constructor(config: pg.PoolConfig, onError: (error: Error) => void) {
    super(config);
    this.on('connect', (client) => {
      this.#open.add(client);
      // pg-pool listens to an idle client, and checkOut and pool.query to a borrowed one; an error
      // no one else hears (one that comes while the pool ends the client, or on a client borrowed
      // without checkOut) would be an uncaught exception that ends the process. It is reported instead.
      client.on('error', (error: Error) => {
        if (client.listenerCount('error') === 1) onError(error);
      });
    });
    this.on('remove', (client) => {
      this.#open.delete(client);
      if (this.#open.size === 0) this.#allClosed?.();
    });
  }

  override end(): Promise<void>;
  override end(callback: () => void): void;
  override end(callback?: () => void): Promise<void> | void {
    const ended = this.#endAndDisconnect();
    if (callback === undefined) return ended;
    ended.then(callback, callback);
  }

  async #endAndDisconnect(): Promise<void> {
    // Resolves once no client is borrowed; the clients' connections are then closing.
    await super.end();
    if (this.#open.size === 0) return;
    const closed = new Promise<void>((resolve) => (this.#allClosed = resolve));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), DISCONNECT_TIMEOUT_MS);
    });
    try {
      if ((await Promise.race([closed, late])) === 'late') {
        // The server did not close them in time: close them from this side, so `end()` still
        // means no connection is left.
        for (const client of this.#open) (client as unknown as pg.Client).connection.stream.destroy();
        await closed;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Creates a bounded connection pool for a PostgreSQL URL.
 *
 * Errors of idle clients (a server restart, a terminated backend), and any error of a client that
 * no one else listens to, are reported to `onIdleError` (the pool's owner logs them) instead of
 * crashing the process, which is what node-postgres does by default. `end()` resolves once every
 * connection is closed (at most {@link DISCONNECT_TIMEOUT_MS} after the pool has no borrowed
 * client), so a server stopped after it sees no session of this pool.
 */
export function createPool(
  connectionString: string,
  options: PoolOptions = {},
  onIdleError: (error: Error) => void = () => {},
): pg.Pool {
  if (typeof connectionString !== 'string' || connectionString.length === 0) {
    throw new TypeError('Expected `connectionString` to be a non-empty PostgreSQL URL');
  }
  const pool = new ClosingPool(
    {
      connectionString,
      application_name: options.applicationName ?? 'audit-export',
      max: options.max ?? DEFAULT_POOL_SIZE,
    },
    onIdleError,
  );
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
