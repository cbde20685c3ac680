import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { createPool } from '../../db/connection.js';
import { migratePool } from '../../db/migrate.js';

/** One test file's own database, migrated, with a pool on it. */
export interface TestDatabase {
  /** URL of this file's database. */
  readonly url: string;
  /** A pool on {@link url}, closed after the file's tests. */
  readonly pool: pg.Pool;
}

function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * Creates a fresh, migrated database for the calling test file and drops it afterwards, so test
 * files never see each other's rows. Call it at the top level of a test file.
 */
export function useTestDatabase(): TestDatabase {
  const name = `audit_export_test_${randomBytes(6).toString('hex')}`;
  const admin = inject('adminDatabaseUrl');
  const url = databaseUrl(admin, name);
  const handle = { url, pool: undefined as unknown as pg.Pool };

  beforeAll(async () => {
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    handle.pool = createPool(url, { applicationName: 'audit-export-test', max: 6 });
    await migratePool(handle.pool);
  });

  afterAll(async () => {
    await handle.pool?.end();
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await client.end();
    }
  });

  return {
    url,
    get pool() {
      return handle.pool;
    },
  };
}
