/**
 * The V8 setting the CLI needs, applied by the process itself however it was launched (`node
 * dist/cli/main.js`, the executable through its shebang, `npm start`, the container's entrypoint).
 *
 * Why a flag at all: V8 grows its young generation with the survival rate, and a long export keeps
 * enough in flight across scavenges that the default lets each semi-space grow to 64 MiB; measured
 * at 1M messages, peak RSS 232-244 MiB without the flag against 120-130 MiB with
 * `--max-semi-space-size=16`, at no cost in CPU. Why a relaunch: the semi-space limit is read once,
 * when the isolate's heap is configured, so `v8.setFlagsFromString()` from JavaScript comes too late
 * (measured: the young generation still grew to 128 MiB). `process.execve()` replaces this process
 * with a Node that has the flag, before anything else is loaded: the same pid, the same stdio, no
 * parent left behind, so signals and the exit code are the new process's own.
 *
 * This module imports only Node's built-in `v8`: it runs before the rest of the CLI is loaded.
 */
import { getHeapStatistics } from 'node:v8';

/** The V8 option that bounds the young generation: each semi-space at most this many MiB. */
export const SEMI_SPACE_OPTION = '--max-semi-space-size';
/** The limit, MiB: a larger young generation raised peak RSS without making exports faster. */
export const SEMI_SPACE_MIB = 16;

/** `--max-semi-space-size`, also written with underscores, with or without `=VALUE`. */
const SEMI_SPACE_PATTERN = /^--max[-_]semi[-_]space[-_]size(?:=|$)/;

/** The parts of a launch the decision depends on. */
export interface Launch {
  /** The Node executable (`process.execPath`). */
  readonly execPath: string;
  /** Node's own options from the command line, the shebang's included (`process.execArgv`). */
  readonly execArgv: readonly string[];
  /** The script and its arguments (`process.argv.slice(1)`). */
  readonly argv: readonly string[];
  /** `NODE_OPTIONS`, whose options Node applies but does not list in `execArgv`. */
  readonly nodeOptions: string | undefined;
}

/** Whether the launch already sets the semi-space limit: on the command line or in NODE_OPTIONS, whatever its value. */
export function setsSemiSpace(launch: Pick<Launch, 'execArgv' | 'nodeOptions'>): boolean {
  const options = [...launch.execArgv, ...(launch.nodeOptions ?? '').split(/\s+/)];
  return options.some((option) => SEMI_SPACE_PATTERN.test(option));
}

/**
 * The argument vector to relaunch with (`argv[0]` included, as execve wants it), or undefined when
 * the launch already sets the limit. A limit someone set is theirs and kept, whatever its value;
 * and the relaunched process sets it, so it never relaunches again.
 */
export function relaunchArguments(launch: Launch): string[] | undefined {
  if (setsSemiSpace(launch)) return undefined;
  return [launch.execPath, `${SEMI_SPACE_OPTION}=${SEMI_SPACE_MIB}`, ...launch.execArgv, ...launch.argv];
}

/**
 * Replaces this process with one that has the semi-space limit, when it lacks it; returns (and the
 * CLI runs as it is) when it has it, or when `process.execve` is missing (before Node 22.15, or on
 * Windows) or fails: slower to bound, never broken. Call it before importing anything big.
 */
export function relaunchWithHeapLimits(): void {
  const args = relaunchArguments({
    execPath: process.execPath,
    execArgv: process.execArgv,
    argv: process.argv.slice(1),
    nodeOptions: process.env.NODE_OPTIONS,
  });
  if (args === undefined || typeof process.execve !== 'function') return;
  try {
    process.execve(process.execPath, args, process.env);
  } catch {
    // E.g. a seccomp policy refusing execve: run without the limit rather than not at all.
  }
}

/** What the debug log says about the heap: enough to check from outside that the limit took effect. */
export interface HeapReport {
  /** This process's pid: a relaunch keeps it (execve), so the pid a parent spawned is this one. */
  readonly pid: number;
  /** Whether the command line or NODE_OPTIONS of this process sets the semi-space limit. */
  readonly semiSpaceLimited: boolean;
  /**
   * V8's heap limit, bytes: the old generation's limit plus three semi-spaces, so it differs
   * between `node` and `node --max-semi-space-size=16` on the same machine (what the test compares).
   */
  readonly heapSizeLimit: number;
}

/** The heap settings this process runs with. */
export function heapReport(): HeapReport {
  return {
    pid: process.pid,
    semiSpaceLimited: setsSemiSpace({ execArgv: process.execArgv, nodeOptions: process.env.NODE_OPTIONS }),
    heapSizeLimit: getHeapStatistics().heap_size_limit,
  };
}
