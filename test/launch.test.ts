import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { relaunchArguments, SEMI_SPACE_MIB, setsSemiSpace } from '../cli/launch.js';
import { collect, startCli } from './support/cli.js';

const execFileAsync = promisify(execFile);

/** V8's heap limit of a bare `node` with these options: the old generation's limit plus three semi-spaces. */
async function heapSizeLimit(nodeOptions: readonly string[]): Promise<number> {
  const { stdout } = await execFileAsync(process.execPath, [...nodeOptions, '-p', 'require("node:v8").getHeapStatistics().heap_size_limit'], {
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return Number(stdout.trim());
}

/** The CLI's `V8 heap settings` debug line, and the pid the test spawned. */
async function cliHeap(env: Record<string, string | undefined>): Promise<{ spawnedPid: number | undefined; code: number | null; heap: Record<string, unknown> }> {
  const child = startCli(['--help'], { LOG_LEVEL: 'trace', ...env });
  const result = await collect(child);
  const line = result.stderr.split('\n').find((text) => text.includes('"V8 heap settings"'));
  expect(line, result.stderr).toBeDefined();
  return { spawnedPid: child.pid, code: result.code, heap: (JSON.parse(line ?? '{}') as { heap: Record<string, unknown> }).heap };
}

describe('the young generation is bounded however the CLI is launched', () => {
  it('relaunches a launch without the semi-space limit, with it first and everything else as it was', () => {
    expect(relaunchArguments({ execPath: '/bin/node', execArgv: ['--enable-source-maps'], argv: ['/app/main.js', 'export', '--x'], nodeOptions: '--trace-warnings' })).toEqual([
      '/bin/node',
      `--max-semi-space-size=${SEMI_SPACE_MIB}`,
      '--enable-source-maps',
      '/app/main.js',
      'export',
      '--x',
    ]);
    expect(relaunchArguments({ execPath: 'node', execArgv: [], argv: ['main.js'], nodeOptions: undefined })).toEqual(['node', '--max-semi-space-size=2', 'main.js']);
  });

  it('leaves a launch alone that sets the limit itself, on the command line or in NODE_OPTIONS, in either spelling and at any value', () => {
    for (const launch of [
      { execArgv: ['--max-semi-space-size=16'], nodeOptions: undefined },
      { execArgv: ['--max_semi_space_size=64'], nodeOptions: '' },
      { execArgv: ['--max-semi-space-size', '8'], nodeOptions: undefined },
      { execArgv: [], nodeOptions: '--enable-source-maps  --max-semi-space-size=32' },
    ]) {
      expect(setsSemiSpace(launch), JSON.stringify(launch)).toBe(true);
      expect(relaunchArguments({ execPath: 'node', argv: ['main.js'], ...launch })).toBeUndefined();
    }
    // An argument of the script is not Node's option.
    expect(setsSemiSpace({ execArgv: ['--max-old-space-size=100'], nodeOptions: '--max-semi-space' })).toBe(false);
  });

  it('plain `node dist/cli/main.js` runs with the semi-space limit of the CLI in effect, as the same process (pid), with its exit code', async () => {
    const [limited, unlimited] = await Promise.all([heapSizeLimit([`--max-semi-space-size=${SEMI_SPACE_MIB}`]), heapSizeLimit([])]);
    // Otherwise this machine's default would be the limit, and the comparison below would prove nothing.
    expect(unlimited).not.toBe(limited);
    const { spawnedPid, code, heap } = await cliHeap({ NODE_OPTIONS: '' });
    expect(code).toBe(0);
    // Measured by V8 itself, not read back from the flags: the heap limit is the limited one.
    expect(heap).toEqual({ pid: spawnedPid, semiSpaceLimited: true, heapSizeLimit: limited });
  });

  it('keeps a limit given in NODE_OPTIONS (no relaunch)', async () => {
    const { spawnedPid, heap } = await cliHeap({ NODE_OPTIONS: '--max-semi-space-size=32' });
    expect(heap).toEqual({ pid: spawnedPid, semiSpaceLimited: true, heapSizeLimit: await heapSizeLimit(['--max-semi-space-size=32']) });
  });
});
