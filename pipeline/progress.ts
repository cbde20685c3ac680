/**
 * Progress of long work: on a terminal one redrawn status line on stderr (a bar, rows, rows/s,
 * elapsed, an estimate of what is left), elsewhere a JSON log line every few seconds and one at the
 * end. The arithmetic and the text are pure functions below; {@link StatusLine} and
 * {@link progressStarter} are the thin shell that owns the timers and the terminal.
 */
import type { Logger } from 'pino';
import { requestLogger } from '../config/logs.js';

/** How far a piece of work is. */
export interface ProgressState {
  /** Data rows written so far. */
  readonly rows: number;
  /** Rows the work will write in all, once known (an export counts them in its snapshot). */
  readonly totalRows?: number;
  /**
   * For work done in steps (backfill units, stop-slots bots): steps done (may be fractional: a
   * running step's share) and in all. Takes precedence over rows for the bar and the estimate.
   */
  readonly steps?: { readonly done: number; readonly total: number };
}

/** A change to a {@link ProgressState}: the fields given replace the current ones. */
export type ProgressUpdate = Partial<ProgressState>;

/** A state and how long the work has run. */
export interface ProgressSnapshot extends ProgressState {
  readonly elapsedMs: number;
}

/** `0:07`, `12:34`, `1:02:03`: whole seconds, hours only when there are any. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const total = Math.floor(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

/** `1,234,567`: rounded, grouped by thousands (no locale data involved, so the same everywhere). */
export function formatCount(value: number): string {
  const rounded = Math.round(value);
  const digits = String(Math.abs(rounded)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return rounded < 0 ? `-${digits}` : digits;
}

/** Rows per second over the elapsed time, rounded; 0 before any time has passed. */
export function rowsPerSecond(rows: number, elapsedMs: number): number {
  return elapsedMs > 0 ? Math.round((rows * 1000) / elapsedMs) : 0;
}

const clamp = (value: number): number => Math.min(1, Math.max(0, value));

/** The share done, from 0 to 1: from the steps when there are any, else from the rows; undefined when unknown. */
export function completedFraction(state: ProgressState): number | undefined {
  if (state.steps !== undefined) return state.steps.total > 0 ? clamp(state.steps.done / state.steps.total) : 1;
  if (state.totalRows !== undefined) return state.totalRows > 0 ? clamp(state.rows / state.totalRows) : 1;
  return undefined;
}

/**
 * Milliseconds left, assuming the rest goes at the pace so far; undefined until something is done
 * (nothing to extrapolate from) or when the total is unknown.
 */
export function remainingMs(state: ProgressState, elapsedMs: number): number | undefined {
  // From the counts rather than the fraction, so 8 of 10 in 10 s is 2.5 s, not 2.4999...
  const [done, total] =
    state.steps !== undefined ? [state.steps.done, state.steps.total] : state.totalRows !== undefined ? [state.rows, state.totalRows] : [0, 0];
  if (done <= 0) return undefined;
  return done >= total ? 0 : (elapsedMs * (total - done)) / done;
}

/** `█████░░░░░`: `width` cells, filled in proportion to `fraction`. */
export function renderBar(fraction: number, width: number): string {
  const cells = Math.max(0, Math.floor(width));
  const filled = Math.round(clamp(fraction) * cells);
  return '█'.repeat(filled) + '░'.repeat(cells - filled);
}

const MIN_BAR = 10;
const MAX_BAR = 30;

/**
 * The status line: `label [bar] 45%  3/18 units  450,123/1,000,000 rows  98,765 rows/s  elapsed 0:05  ETA 0:06`.
 * Fits in `columns - 1` characters (writing the last column makes some terminals wrap): the bar
 * shrinks to 10 cells, then the elapsed time and the rate go, then the bar, then the line is cut.
 */
export function renderProgressLine(label: string, snapshot: ProgressSnapshot, columns: number, stepName = 'steps'): string {
  const fraction = completedFraction(snapshot);
  const left = remainingMs(snapshot, snapshot.elapsedMs);
  const steps =
    snapshot.steps === undefined ? undefined : `${formatCount(Math.floor(snapshot.steps.done))}/${formatCount(snapshot.steps.total)} ${stepName}`;
  const rows =
    snapshot.totalRows !== undefined && snapshot.steps === undefined
      ? `${formatCount(snapshot.rows)}/${formatCount(snapshot.totalRows)} rows`
      : `${formatCount(snapshot.rows)} rows`;
  const rate = `${formatCount(rowsPerSecond(snapshot.rows, snapshot.elapsedMs))} rows/s`;
  const elapsed = `elapsed ${formatDuration(snapshot.elapsedMs)}`;
  const percent = fraction === undefined ? undefined : `${Math.floor(fraction * 100)}%`;
  // Once everything is done the elapsed time says more than an ETA of 0:00.
  const eta = left === undefined || fraction === 1 ? undefined : `ETA ${formatDuration(left)}`;
  const room = Math.max(0, columns - 1);
  const compose = (withRate: boolean, withElapsed: boolean, bar: number): string => {
    const rest = [percent, steps, rows, withRate ? rate : undefined, withElapsed ? elapsed : undefined, eta].filter((part) => part !== undefined);
    const head = bar > 0 ? `${label} [${renderBar(fraction ?? 0, bar)}] ` : `${label}  `;
    return head + rest.join('  ');
  };
  // Each candidate in order of preference; the first that fits wins.
  for (const [withRate, withElapsed] of [[true, true], [true, false], [false, false]] as const) {
    const bare = compose(withRate, withElapsed, 0).length;
    // The bar costs its cells plus "[] " (3) minus the one space it replaces.
    const bar = fraction === undefined ? 0 : Math.min(MAX_BAR, room - bare - 2);
    if (bar >= MIN_BAR) return compose(withRate, withElapsed, bar);
  }
  for (const [withRate, withElapsed] of [[true, true], [true, false], [false, false]] as const) {
    const line = compose(withRate, withElapsed, 0);
    if (line.length <= room) return line;
  }
  return compose(false, false, 0).slice(0, room);
}

/**
 * The fields of a JSON progress line: `rows`, `totalRows`, `percent`, `<stepName>` (total) and
 * `<stepName>Done`, `rowsPerSecond`, `elapsedSeconds`, `etaSeconds` (the last only when estimable).
 */
export function progressFields(snapshot: ProgressSnapshot, stepName = 'steps'): Record<string, number> {
  const fraction = completedFraction(snapshot);
  const left = remainingMs(snapshot, snapshot.elapsedMs);
  return {
    rows: snapshot.rows,
    ...(snapshot.totalRows === undefined ? {} : { totalRows: snapshot.totalRows }),
    ...(snapshot.steps === undefined ? {} : { [stepName]: snapshot.steps.total, [`${stepName}Done`]: Math.floor(snapshot.steps.done) }),
    ...(fraction === undefined ? {} : { percent: Math.floor(fraction * 1000) / 10 }),
    rowsPerSecond: rowsPerSecond(snapshot.rows, snapshot.elapsedMs),
    elapsedSeconds: Math.round(snapshot.elapsedMs / 100) / 10,
    ...(left === undefined ? {} : { etaSeconds: Math.round(left / 1000) }),
  };
}

// ---------------------------------------------------------------------------------------------
// The shell: a terminal line, and the reporters that decide when to draw or log.

const CLEAR_TO_END = '\u001b[K';

/**
 * One status line at the bottom of a terminal that log lines can pass: {@link writeAbove} clears
 * it, writes the log text, and draws it again, so a log line never lands in the middle of the bar.
 * Every write is one call to `write`, so nothing can come in between.
 */
export class StatusLine {
  readonly #write: (text: string) => void;
  readonly #columns: () => number | undefined;
  #text = '';
  #shown = false;

  /**
   * @param write writes to the terminal (synchronously, so the order of logs and bar is kept).
   * @param columns the terminal's width; 0 or undefined (a pseudo-terminal without a size) means 80.
   */
  constructor(write: (text: string) => void, columns: () => number | undefined) {
    this.#write = write;
    this.#columns = columns;
  }

  /** The width to render for. */
  get columns(): number {
    const columns = this.#columns();
    return columns !== undefined && columns > 0 ? columns : 80;
  }

  /** Replaces the line with `text`; a redraw of the same text writes nothing. */
  draw(text: string): void {
    if (this.#shown && text === this.#text) return;
    this.#write(`\r${text}${CLEAR_TO_END}`);
    this.#text = text;
    this.#shown = true;
  }

  /** Leaves `text` on the screen as the line's last state and moves below it. */
  finish(text: string): void {
    this.#write(`\r${text}${CLEAR_TO_END}\n`);
    this.#text = '';
    this.#shown = false;
  }

  /** Removes the line. */
  clear(): void {
    if (this.#shown) this.#write(`\r${CLEAR_TO_END}`);
    this.#text = '';
    this.#shown = false;
  }

  /** Writes whole lines of other output above the status line. */
  writeAbove(chunk: string): void {
    this.#write(this.#shown ? `\r${CLEAR_TO_END}${chunk}\r${this.#text}${CLEAR_TO_END}` : chunk);
  }
}

/** `bar`: a status line on the terminal; `json`: JSON log lines; `off`: nothing. */
export type ProgressMode = 'bar' | 'json' | 'off';

/** How a command reports progress. */
export interface ProgressSettings {
  readonly mode: ProgressMode;
  readonly logger: Logger;
  /** JSON mode: a line every this many milliseconds. */
  readonly intervalMs: number;
  /** Bar mode: the terminal line to draw on. */
  readonly line?: StatusLine;
  /** The clock; `performance.now` unless a test says otherwise. */
  readonly now?: () => number;
}

/** What one piece of work is called in its progress output. */
export interface ProgressSpec {
  /** Starts the status line: `merchant 42`, `backfill`, `request r-1`. */
  readonly label: string;
  /** The JSON lines' `message`. */
  readonly message: string;
  /** Fields on every JSON line (`requestId`, `kind`). */
  readonly fields?: Readonly<Record<string, unknown>>;
  /** What the steps are called (`units`, `bots`). */
  readonly stepName?: string;
  /** The request the work is for: its JSON lines name it (`requestId`, and the request's label). */
  readonly requestId?: string;
}

/** How a piece of work ended, for {@link Progress.end}. */
export type ProgressOutcome = 'done' | 'failed' | 'cancelled';

/** A running piece of work's progress reporter. */
export interface Progress {
  readonly mode: ProgressMode;
  /** Records new counts (cheap: drawing and logging happen on their own timers). */
  update(update: ProgressUpdate, fields?: Readonly<Record<string, unknown>>): void;
  /**
   * Logs the current state as a JSON line now, unless a bar shows it: for work whose steps each
   * log a line (a backfill's units), with `--no-progress` too.
   */
  logNow(): void;
  /**
   * Stops the timers. Done: the bar's last state stays on the screen (JSON: one last line with
   * `final: true`). Failed or cancelled: the bar is removed, no last line (the error says it).
   * Nothing is written after it; calling it again does nothing.
   */
  end(outcome: ProgressOutcome): void;
}

/** Starts a {@link Progress} for one piece of work. */
export type ProgressStarter = (spec: ProgressSpec) => Progress;

/** The bar is redrawn at most this often (5 times a second), whatever the pace of updates. */
const REDRAW_MS = 200;

/** Creates progress reporters that draw or log as `settings` say. */
export function progressStarter(settings: ProgressSettings): ProgressStarter {
  return (spec) => startProgress(spec, settings);
}

function startProgress(spec: ProgressSpec, settings: ProgressSettings): Progress {
  const now = settings.now ?? (() => performance.now());
  const started = now();
  const logger = spec.requestId === undefined ? settings.logger : requestLogger(settings.logger, spec.requestId);
  const line = settings.line;
  const mode: ProgressMode = settings.mode === 'bar' && line === undefined ? 'json' : settings.mode;
  let state: ProgressState = { rows: 0 };
  let extra: Readonly<Record<string, unknown>> = {};
  let ended = false;
  const snapshot = (): ProgressSnapshot => ({ ...state, elapsedMs: now() - started });
  const text = (): string => renderProgressLine(spec.label, snapshot(), line?.columns ?? 80, spec.stepName);
  const log = (final: boolean): void => {
    logger.info(
      { ...spec.fields, ...progressFields(snapshot(), spec.stepName), ...extra, ...(final ? { final: true } : {}) },
      spec.message,
    );
  };
  let timer: NodeJS.Timeout | undefined;
  if (mode === 'bar') {
    timer = setInterval(() => line?.draw(text()), REDRAW_MS);
    line?.draw(text());
  } else if (mode === 'json' && settings.intervalMs > 0) {
    timer = setInterval(() => log(false), settings.intervalMs);
  }
  // Progress never keeps a finished process alive.
  timer?.unref();
  return {
    mode,
    update(update, fields) {
      if (ended) return;
      state = { ...state, ...update };
      if (fields !== undefined) extra = { ...extra, ...fields };
    },
    logNow() {
      if (!ended && mode !== 'bar') log(false);
    },
    end(outcome) {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      if (mode === 'bar') {
        if (outcome === 'done') line?.finish(text());
        else line?.clear();
      } else if (mode === 'json' && outcome === 'done') {
        log(true);
      }
    },
  };
}

/** A starter that reports nothing (library callers, tests). */
export const noProgress: ProgressStarter = () => ({ mode: 'off', update() {}, logNow() {}, end() {} });

/**
 * Runs `work` with a progress reporter and ends it however `work` ends: done, failed, or
 * cancelled (`signal` aborted).
 */
export async function withProgress<T>(progress: Progress, signal: AbortSignal, work: (progress: Progress) => Promise<T>): Promise<T> {
  try {
    const result = await work(progress);
    progress.end('done');
    return result;
  } catch (error) {
    progress.end(signal.aborted ? 'cancelled' : 'failed');
    throw error;
  }
}
