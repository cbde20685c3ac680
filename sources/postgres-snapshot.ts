import type { Readable } from 'node:stream';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { checkOut } from '../db/connection.js';

/** A connection inside one `REPEATABLE READ READ ONLY` transaction: every read sees one snapshot. */
export interface SnapshotSession {
  /** Runs a query in the snapshot. */
  query<R extends pg.QueryResultRow>(sql: string, values?: readonly unknown[]): Promise<pg.QueryResult<R>>;
  /**
   * Streams `COPY (...) TO STDOUT` output as raw bytes; reads are driven by the consumer
   * (backpressure reaches the server's socket). Only one may run at a time.
   */
  copyOut(copySql: string): Readable;
}

/**
 * Runs `work` in a read-only repeatable-read transaction on a pooled connection and always gives the
 * connection back: committed after success; rolled back after a failure; destroyed instead when a
 * COPY was interrupted, because node-postgres cannot reuse a connection with a COPY in flight.
 * `statement_timeout` is off for the transaction: an export is one long statement.
 */
export async function withReadOnlySnapshot<T>(pool: pg.Pool, work: (session: SnapshotSession) => Promise<T>): Promise<T> {
  const borrowed = await checkOut(pool);
  const { client } = borrowed;
  let copyInFlight = false;
  let broken = false;
  const session: SnapshotSession = {
    query: (sql, values) => client.query(sql, values as unknown[] | undefined),
    copyOut(copySql) {
      if (copyInFlight) throw new Error('A COPY is already streaming on this session');
      copyInFlight = true;
      const stream = client.query(copyTo(copySql));
      stream.once('end', () => {
        copyInFlight = false;
      });
      return stream;
    },
  };
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query('SET LOCAL statement_timeout = 0');
    const result = await work(session);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    broken = copyInFlight || borrowed.connectionError() !== undefined;
    if (!broken) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
    }
    throw error;
  } finally {
    borrowed.release(broken);
  }
}
