import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built CLI; `npm test` builds it before the suite runs. */
export const CLI_PATH = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** What a CLI run printed and how it ended. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The last stdout line parsed as JSON, when there is one. */
  readonly summary: Record<string, unknown> | undefined;
}

/** Starts `audit-export ARGS` with the given extra environment. */
export function startCli(
  args: readonly string[],
  env: Record<string, string | undefined>,
  cwd?: string,
  stdin: 'ignore' | 'pipe' = 'ignore',
): ChildProcess {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` (npm test does)`);
  return spawn(process.execPath, [CLI_PATH, ...args], {
    cwd,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
}

/** Waits for a started CLI to exit and collects its output. */
export async function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (exitCode) => resolve(exitCode)));
  const last = stdout.trimEnd().split('\n').pop() ?? '';
  let summary: Record<string, unknown> | undefined;
  try {
    summary = JSON.parse(last) as Record<string, unknown>;
  } catch {
    summary = undefined;
  }
  return { code, stdout, stderr, summary };
}

/** Runs `audit-export ARGS` to the end. */
export async function runCli(args: readonly string[], env: Record<string, string | undefined> = {}, cwd?: string): Promise<CliResult> {
  return await collect(startCli(args, env, cwd));
}

/**
 * Runs `audit-export ARGS` like {@link runCli}, but kills it (SIGKILL) after `ms`: a test of
 * something that used to hang then fails with the run's output instead of leaving a process behind.
 * A killed run resolves with `code` null.
 */
export async function runCliWithin(
  ms: number,
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  cwd?: string,
): Promise<CliResult> {
  const child = startCli(args, env, cwd);
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  try {
    return await collect(child);
  } finally {
    clearTimeout(timer);
  }
}
