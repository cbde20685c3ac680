import type pg from 'pg';
import type { Logger } from 'pino';
import { createPool } from '../db/connection.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { migratePool } from '../db/migrate.js';
import { seed, type SeedSummary } from '../db/seed.js';

/** The deterministic data set the embedded default is seeded with. */
export const DEMO_SEED = { merchants: 3, messages: 6000, seed: 1 } as const;

/** A pool on the configured database, or on a throw-away embedded one. */
export interface Database {
  readonly pool: pg.Pool;
  /** True when no DATABASE_URL was set and an embedded PostgreSQL with demo data serves. */
  readonly embedded: boolean;
  /** The pool's connection URL: `DATABASE_URL`, or the embedded server's. */
  readonly url: string;
  /** What the embedded database was seeded with; undefined for a configured one. */
  readonly seeded?: SeedSummary;
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Start an embedded PostgreSQL when `DATABASE_URL` is not set (else that is an error). */
  readonly allowEmbedded: boolean;
  /**
   * The caller tells the user itself that an embedded PostgreSQL is started (the demo narrates it):
   * the notice is logged at info, not as a warning.
   */
  readonly embeddedExpected?: boolean;
  /** The pool's size; default `DEFAULT_POOL_SIZE` (db/connection.ts). */
  readonly max?: number;
}

/**
 * Opens `DATABASE_URL`, or, when it is not set and `allowEmbedded`, starts an embedded PostgreSQL,
 * migrates it and seeds the demo data set, so the tool runs on a fresh machine with no services.
 * `close()` ends the pool (every connection closed, see `createPool`) before it stops the embedded
 * server, and stops the server even when ending the pool failed.
 */
export async function openDatabase(
  logger: Logger,
  options: OpenDatabaseOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Database> {
  const url = env.DATABASE_URL;
  const poolOptions = { applicationName: 'audit-export', ...(options.max === undefined ? {} : { max: options.max }) };
  const onIdleError = (error: Error): void => logger.warn({ err: error }, 'idle database connection failed');
  if (url !== undefined && url !== '') {
    const pool = createPool(url, poolOptions, onIdleError);
    return { pool, embedded: false, url, close: () => pool.end() };
  }
  if (!options.allowEmbedded) {
    throw new Error('DATABASE_URL is not set: this command needs the database it should work on');
  }
  logger[options.embeddedExpected === true ? 'info' : 'warn']('DATABASE_URL is not set: starting an embedded PostgreSQL with a seeded demo data set');
  const server = await startEmbeddedPostgres((line) => logger.debug({ postgres: line }, 'embedded postgres'));
  const pool = createPool(server.url, poolOptions, onIdleError);
  let seeded: SeedSummary;
  try {
    await migratePool(pool);
    seeded = await seed(pool, DEMO_SEED);
    logger.info({ ...seeded }, 'embedded PostgreSQL seeded');
  } catch (error) {
    await pool.end().catch(() => {});
    await server.stop().catch(() => {});
    throw error;
  }
  return {
    pool,
    embedded: true,
    url: server.url,
    seeded,
    async close() {
      // In this order: a server stopped under open sessions terminates them, and each would be
      // reported as a failed connection.
      try {
        await pool.end();
      } finally {
        await server.stop();
      }
    },
  };
}
