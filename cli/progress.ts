import type { Logger } from 'pino';
import { setting } from '../config/env.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { progressStarter, type ProgressMode, type ProgressStarter, type StatusLine } from '../pipeline/progress.js';

/** JSON progress lines come every 5 s unless `PROGRESS_INTERVAL_MS` says otherwise. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 5_000;

/** `PROGRESS_INTERVAL_MS`: milliseconds between JSON progress lines; 0 turns progress off. */
export function progressIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const value = setting(env, 'PROGRESS_INTERVAL_MS');
  if (value === undefined) return DEFAULT_PROGRESS_INTERVAL_MS;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidRequestError('PROGRESS_INTERVAL_MS', `expected a whole number of milliseconds (0: no progress), got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** How a command shows its progress. */
export interface CliProgressOptions {
  /** False with `--no-progress`. */
  readonly enabled: boolean;
  readonly logger: Logger;
  /** The terminal's status line when stderr is a terminal (then a bar is drawn), else undefined. */
  readonly line: StatusLine | undefined;
  /** False for commands that run several pieces of work at once (`worker`): JSON lines even on a terminal. */
  readonly bar?: boolean;
}

/**
 * Chooses the progress output of a command: a bar when stderr is a terminal, JSON lines otherwise,
 * nothing with `--no-progress` or `PROGRESS_INTERVAL_MS=0`.
 */
export function cliProgress(options: CliProgressOptions, env: NodeJS.ProcessEnv = process.env): ProgressStarter {
  const intervalMs = progressIntervalMs(env);
  let mode: ProgressMode = 'json';
  if (!options.enabled || intervalMs === 0) mode = 'off';
  else if (options.line !== undefined && options.bar !== false) mode = 'bar';
  return progressStarter({ mode, logger: options.logger, intervalMs, ...(options.line === undefined ? {} : { line: options.line }) });
}
