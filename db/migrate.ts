import type pg from 'pg';
import { withClient } from './connection.js';
import { SOURCE_SCHEMA_SQL } from './schema.js';

// Any constant works; it only has to be the same for every process migrating the same database.
const MIGRATION_LOCK_KEY = 0x6175_6469;

/**
 * Creates the source tables and their indexes when missing. Safe to run again and from several
 * processes at once: an advisory lock serialises concurrent runs, and every statement is idempotent.
 */
export async function migrate(client: pg.ClientBase): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(SOURCE_SCHEMA_SQL);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/** {@link migrate} on a connection borrowed from `pool`. */
export async function migratePool(pool: pg.Pool): Promise<void> {
  await withClient(pool, migrate);
}
