import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL URL with the right to create databases; each test file creates its own. */
    adminDatabaseUrl: string;
  }
}

let embedded: EmbeddedDatabase | undefined;

/** Starts one PostgreSQL for the whole run, unless `TEST_DATABASE_URL` names a server to use. */
export async function setup(project: TestProject): Promise<void> {
  const configured = process.env.TEST_DATABASE_URL;
  if (configured !== undefined && configured !== '') {
    project.provide('adminDatabaseUrl', configured);
    return;
  }
  embedded = await startEmbeddedPostgres();
  project.provide('adminDatabaseUrl', embedded.url);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
}
