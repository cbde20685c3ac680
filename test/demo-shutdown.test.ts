import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, collect, type CliResult } from './support/cli.js';
import { embeddedLeftovers, ownTemporaryDirectory } from './support/embedded-leftovers.js';
import { temporaryDirectory } from './support/export.js';

/** How many demos in a row: the flaky shutdown failed about one run in eight, and warned in about one in three. */
const RUNS = 20;

/** `npm start` as package.json runs it (the same V8 flag), with no DATABASE_URL nor LOG_LEVEL, in a folder and a TMPDIR of its own; `onStdout` sees the child and its stdout so far. */
async function npmStart(extraNodeOptions: string[] = [], onStdout?: (child: ChildProcess, stdout: string) => void): Promise<CliResult & { tmp: string }> {
  const cwd = await temporaryDirectory();
  const tmp = await ownTemporaryDirectory();
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.DATABASE_URL;
  delete env.LOG_LEVEL;
  delete env.STATE_DATABASE_URL;
  const child = spawn(process.execPath, ['--max-semi-space-size=2', ...extraNodeOptions, CLI_PATH, 'demo', '--no-progress'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (onStdout !== undefined) {
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => onStdout(child, (stdout += chunk.toString())));
  }
  return { ...(await collect(child)), tmp };
}

/** The lines on stderr that say something went wrong: a warning or worse, Node's crash report, or the CLI's own `audit-export: failed`. */
function troubleOn(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => /"severity":"(?:WARNING|ERROR|CRITICAL)"|^Node\.js v|^audit-export:|Error/.test(line))
    .map((line) => line.slice(0, 400));
}

describe('the demo at shutdown', () => {
  it(`exits 0 with nothing but its own lines on stdout and no warning on stderr, ${RUNS} runs in a row`, async () => {
    const outcomes: string[] = [];
    for (let run = 1; run <= RUNS; run += 1) {
      const result = await npmStart();
      const trouble = troubleOn(result.stderr);
      const leftovers = await embeddedLeftovers(result.tmp);
      if (result.code !== 0 || trouble.length > 0 || result.summary?.kind !== 'demo' || leftovers.dataDirectories.length + leftovers.processes.length > 0) {
        outcomes.push(`run ${run}: exit ${result.code}, ${JSON.stringify(trouble)}, leftovers ${JSON.stringify(leftovers)}`);
      }
    }
    expect(outcomes).toEqual([]);
  }, 600_000);

  it('logs an error nothing listened to as one small line, says so, exits 1 and stops its embedded PostgreSQL', async () => {
    // An error thrown outside any handler once everything the demo starts is running (SIGUSR2 from
    // the test): what an unheard `error` event of a connection would be. It carries a client-sized object.
    const hook = `data:text/javascript,process.on('SIGUSR2', () => setImmediate(() => { throw Object.assign(new Error('unheard at shutdown'), { code: 'E_TEST', client: { state: 'x'.repeat(5000) } }); }));`;
    let signalled = false;
    const result = await npmStart([`--import=${hook}`], (child, stdout) => {
      if (stdout.includes('[2/4]') && !signalled) signalled = child.kill('SIGUSR2');
    });
    expect(signalled).toBe(true);
    expect(result.code, result.stderr).toBe(1);
    const fatal = result.stderr.split('\n').filter((line) => line.includes('"severity":"CRITICAL"'));
    expect(fatal, result.stderr).toHaveLength(1);
    expect(JSON.parse(fatal[0] ?? '{}')).toMatchObject({ message: 'uncaught error: unheard at shutdown', err: { type: 'Error', code: 'E_TEST', message: 'unheard at shutdown' } });
    expect(fatal[0]?.length).toBeLessThan(2048);
    expect(result.stderr).toContain('audit-export: failed: uncaught error: unheard at shutdown');
    expect(result.stderr).not.toContain('xxxxxxxxxx');
    expect(result.stderr).not.toMatch(/^Node\.js v/m);
    expect(await embeddedLeftovers(result.tmp)).toEqual({ dataDirectories: [], processes: [] });
  });
});
