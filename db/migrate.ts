import type pg from 'pg';
import { withClient } from './connection.js';
import { SOURCE_SCHEMA_SQL } from './schema.js';
import { STATE_SCHEMA_SQL } from './state-schema.js';

// Any constants work; each only has to be the same for every process migrating the same database.
// Two keys, so the source and state schemas (often one database) never wait on each other.
const MIGRATION_LOCK_KEY = 0x6175_6469;
const STATE_MIGRATION_LOCK_KEY = 0x6175_6473;

/** Runs `sql` in one transaction holding the advisory lock `key`, so concurrent runs take turns. */
async function migrateLocked(client: pg.ClientBase, key: number, sql: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [key]);
    await client.query(sql);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/**
 * Creates the source tables and their indexes when missing. Safe to run again and from several
 * processes at once: an advisory lock serialises concurrent runs, and every statement is idempotent.
 */
export async function migrate(client: pg.ClientBase): Promise<void> {
  await migrateLocked(client, MIGRATION_LOCK_KEY, SOURCE_SCHEMA_SQL);
}

/** {@link migrate} on a connection borrowed from `pool`. */
export async function migratePool(pool: pg.Pool): Promise<void> {
  await withClient(pool, migrate);
}

/**
 * Creates the mail step's state tables (see `STATE_SCHEMA_SQL`) when missing, on the state database
 * (`STATE_DATABASE_URL`, default `DATABASE_URL`; the caller picks the pool). Idempotent and safe to
 * run concurrently, like {@link migrate}, under a lock of its own.
 */
export async function migrateState(pool: pg.Pool): Promise<void> {
  await withClient(pool, (client) => migrateLocked(client, STATE_MIGRATION_LOCK_KEY, STATE_SCHEMA_SQL));
}
