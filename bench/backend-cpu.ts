/**
 * CPU seconds of the PostgreSQL backends that served one benchmark run, read from the kernel: a
 * backend exits when its connection closes and the postmaster reaps it, which adds the backend's
 * user and system time to the postmaster's `cutime` and `cstime` (/proc/PID/stat). The difference
 * over a run, once the run's backends are gone, is their CPU, parallel workers included; no query
 * of our own is needed inside the measured session. Only for a server on this machine (the
 * embedded one, or a local DATABASE_URL); elsewhere the meter is undefined and the figure n/a.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);

/** The fields of /proc/PID/stat the meter reads, in clock ticks. */
export interface ProcStat {
  readonly ppid: number;
  readonly utime: number;
  readonly stime: number;
  /** User time of the children this process has waited for. */
  readonly cutime: number;
  /** System time of the children this process has waited for. */
  readonly cstime: number;
}

/**
 * Parses /proc/PID/stat. The command name (field 2) is in parentheses and may hold spaces and
 * parentheses itself, so the fields are counted from its last `)`.
 * @throws Error when the text is not a stat line.
 */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(')');
  // After the name: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const fields = close < 0 ? [] : text.slice(close + 2).trim().split(/\s+/);
  const number = (index: number, name: string): number => {
    const value = Number(fields[index]);
    if (!Number.isSafeInteger(value)) throw new Error(`Expected /proc/PID/stat to have ${name} as field ${index + 3}, got ${JSON.stringify(text.slice(0, 200))}`);
    return value;
  };
  return { ppid: number(1, 'ppid'), utime: number(11, 'utime'), stime: number(12, 'stime'), cutime: number(13, 'cutime'), cstime: number(14, 'cstime') };
}

async function stat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The pids whose parent is `parent` (the kernel here has no /proc/PID/task/PID/children). */
async function childrenOf(parent: number): Promise<Set<number>> {
  const children = new Set<number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if ((await stat(Number(name)))?.ppid === parent) children.add(Number(name));
  }
  return children;
}

/** Where a run starts: the postmaster's reaped children's CPU and the children alive. */
export interface BackendMark {
  readonly ticks: number;
  readonly children: ReadonlySet<number>;
}

/** Measures the backends' CPU over a run: `mark()` before, `since(mark)` after. */
export interface BackendCpuMeter {
  readonly postmasterPid: number;
  mark(): Promise<BackendMark>;
  /**
   * CPU seconds of the backends that started after `mark` and have exited, waiting (up to
   * `waitMs`) for the run's backends to exit first: a connection's backend outlives its client's
   * close by a moment.
   */
  since(mark: BackendMark, waitMs?: number): Promise<number>;
}

/**
 * A meter for the server behind `url`, or undefined when its postmaster is not a process on this
 * machine (a remote server, or another PID namespace).
 */
export async function backendCpuMeter(url: string): Promise<BackendCpuMeter | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let postmasterPid: number | undefined;
  try {
    const backend = Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
    // While the connection is open: its backend exits when it closes.
    postmasterPid = (await stat(backend))?.ppid;
  } finally {
    await client.end();
  }
  if (postmasterPid === undefined || (await stat(postmasterPid)) === undefined) return undefined;
  const ticksPerSecond = await clockTicks();
  const reaped = async (): Promise<number> => {
    const now = await stat(postmasterPid);
    if (now === undefined) throw new Error(`The PostgreSQL postmaster (pid ${postmasterPid}) is gone`);
    return now.cutime + now.cstime;
  };
  return {
    postmasterPid,
    async mark() {
      return { ticks: await reaped(), children: await childrenOf(postmasterPid) };
    },
    async since(mark, waitMs = 2000) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const started = [...(await childrenOf(postmasterPid))].filter((pid) => !mark.children.has(pid));
        if (started.length === 0 || Date.now() >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return ((await reaped()) - mark.ticks) / ticksPerSecond;
    },
  };
}

/** Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when getconf is missing). */
async function clockTicks(): Promise<number> {
  try {
    const value = Number((await execFileAsync('getconf', ['CLK_TCK'])).stdout.trim());
    return Number.isSafeInteger(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}
