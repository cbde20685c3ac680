import { existsSync } from 'node:fs';
import { chmod, readdir, readFile } from 'node:fs/promises';
import { temporaryDirectory } from './export.js';

/**
 * A TMPDIR of a CLI run's own, so other processes' embedded servers on this machine do not count;
 * world-writable like /tmp, because PostgreSQL runs as another user when we are root.
 */
export async function ownTemporaryDirectory(): Promise<string> {
  const directory = await temporaryDirectory();
  await chmod(directory, 0o1777);
  return directory;
}

/** The embedded servers' data directories in `directory`, sorted. */
export async function embeddedDataDirectories(directory: string): Promise<string[]> {
  return (await readdir(directory)).filter((name) => name.startsWith('audit-export-pg-')).sort();
}

/** What a run left in its TMPDIR of embedded PostgreSQL data, and the processes still running with it on their command line. */
export async function embeddedLeftovers(tmp: string): Promise<{ dataDirectories: string[]; processes: string[] }> {
  const dataDirectories = await embeddedDataDirectories(tmp);
  const processes: string[] = [];
  if (existsSync('/proc')) {
    for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
      const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (commandLine.includes(tmp)) processes.push(`${pid}: ${commandLine.replace(/\0/g, ' ')}`);
    }
  }
  return { dataDirectories, processes };
}
