/**
 * The V8 setting the CLI needs, applied by the process itself however it was launched (`node
 * dist/cli/main.js`, the executable through its shebang, `npm start`, the container's entrypoint).
 *
 * Why a flag at all: V8 sizes its young generation by the survival rate, and under a long export
 * the default lets each semi-space grow to 64 MiB: peak RSS 232-244 MiB at 1M messages. Why so small
 * a limit: the CSV is written from the COPY bytes with almost no JavaScript garbage per row, so
 * scavenges are rare, and the Buffers that die young (COPY input, CSV chunks, deflate output) keep
 * their memory until a scavenge or V8's external-memory limit (about 64 MiB more) forces a
 * collection. A small young generation collects them early. Measured at 1M messages, peak RSS by
 * limit: 16 MiB 168-178, 8 MiB 149-152, 4 MiB 131-134, 3 MiB 130, 2 MiB 105-110, for about 10%
 * more CPU at 2 than at 16. Why a relaunch: the limit is read once, when the isolate's heap is
 * configured, so `v8.setFlagsFromString()` from JavaScript comes too late (measured: the young
 * generation still grew to 128 MiB). `process.execve()` replaces this process with a Node that has
 * the flag, before anything else is loaded: the same pid, the same stdio, no parent left behind, so
 * signals and the exit code are the new process's own.
 *
 * This module imports only Node's built-in `v8`: it runs before the rest of the CLI is loaded.
 */
import { getHeapStatistics } from 'node:v8';

/** The V8 option that bounds the young generation: each semi-space at most this many MiB. */
export const SEMI_SPACE_OPTION = '--max-semi-space-size';
/** The limit, MiB: each MiB more raised an export's peak RSS (see above); less than 2 made it no smaller. */
export const SEMI_SPACE_MIB = 2;

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
   * between `node` and `node --max-semi-space-size=2` on the same machine (what the test compares).
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
