/**
 * The benchmark's figures: one run's measurements, their summary per mode, and the markdown tables
 * and flatness line printed from them. Pure functions; bench/export-vs-copy.ts measures.
 */

/** What one run of one mode measured. `null` where the mode cannot measure it (said in the table). */
export interface RunFigures {
  /** Wall seconds of the measured work. */
  readonly seconds: number;
  /** Rows exported (e-mails accepted, for the mailer). */
  readonly rows: number | null;
  /** Bytes produced: the deflated stream, the zip, or the e-mails as the SMTP server received them. */
  readonly bytes: number;
  /** Peak resident set size of the measured process(es), MiB. */
  readonly maxRssMiB: number | null;
}

/** The modes, in the order each round runs them (A B C ... A B C ...). */
export const MODES = ['copy', 'psql', 'export', 'cli', 'gcs', 'mailer'] as const;
export type Mode = (typeof MODES)[number];

/** How each mode is named in the tables. */
export const MODE_LABELS: Readonly<Record<Mode, string>> = {
  copy: 'COPY csv -> Node deflate 6 (baseline)',
  psql: '`psql \\copy ... \\| zip -6`',
  export: '`export conversations` -> local zip',
  cli: '`audit-export export conversations` -> local zip (whole CLI process)',
  gcs: '`export conversations` -> gs:// (test server)',
  mailer: '`mailer`: 100 e-mails -> local SMTP',
};

/** One mode's runs at one size, summarised. */
export interface ModeSummary {
  readonly mode: Mode;
  readonly label: string;
  readonly runs: readonly RunFigures[];
  readonly medianSeconds: number;
  readonly minSeconds: number;
  readonly maxSeconds: number;
  /** Rows (or e-mails) per second at the median; null when the mode counts none. */
  readonly rowsPerSecond: number | null;
  /** Output megabytes (10^6) per second at the median. */
  readonly megabytesPerSecond: number;
  /** The highest peak RSS of the runs, MiB. */
  readonly peakRssMiB: number | null;
  /** Median over the baseline's median; null for the mailer, which has no baseline. */
  readonly ratioToBaseline: number | null;
}

/** The median: the middle value, or the mean of the two middle ones. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/**
 * Summarises one mode's runs. `baselineSeconds` is the COPY baseline's median at the same size;
 * `fallbackRows` stands in for a mode that cannot count its rows (psql's `\copy` to stdout reports
 * none) but ran the very same query.
 */
export function summarise(mode: Mode, runs: readonly RunFigures[], baselineSeconds: number | undefined, fallbackRows?: number): ModeSummary {
  const seconds = runs.map((run) => run.seconds);
  const wall = median(seconds);
  const rows = runs[0]?.rows ?? fallbackRows ?? null;
  const rss = runs.map((run) => run.maxRssMiB).filter((value): value is number => value !== null);
  return {
    mode,
    label: MODE_LABELS[mode],
    runs,
    medianSeconds: wall,
    minSeconds: Math.min(...seconds),
    maxSeconds: Math.max(...seconds),
    rowsPerSecond: rows === null ? null : rows / wall,
    megabytesPerSecond: median(runs.map((run) => run.bytes)) / wall / 1e6,
    peakRssMiB: rss.length === runs.length && rss.length > 0 ? Math.max(...rss) : null,
    ratioToBaseline: mode === 'mailer' || baselineSeconds === undefined ? null : wall / baselineSeconds,
  };
}

const thousands = (value: number): string => Math.round(value).toLocaleString('en-US');

/** The markdown table of one size: one row per mode. */
export function formatTable(messages: number, summaries: readonly ModeSummary[]): string {
  const lines = [
    `${thousands(messages)} messages:`,
    '',
    '| command | wall s (median) | range | rows/s | out MB/s | peak RSS MiB | vs COPY |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const summary of summaries) {
    const rate = summary.rowsPerSecond === null ? 'n/a' : `${thousands(summary.rowsPerSecond)}${summary.mode === 'mailer' ? ' e-mails/s' : ''}`;
    lines.push(
      `| ${summary.label} | ${summary.medianSeconds.toFixed(2)} | ${summary.minSeconds.toFixed(2)}-${summary.maxSeconds.toFixed(2)} | ` +
        `${rate} | ${summary.mode === 'mailer' ? 'n/a' : summary.megabytesPerSecond.toFixed(1)} | ` +
        `${summary.peakRssMiB === null ? 'n/a' : Math.round(summary.peakRssMiB)} | ` +
        `${summary.ratioToBaseline === null ? 'n/a' : `${summary.ratioToBaseline.toFixed(2)}x`} |`,
    );
  }
  return lines.join('\n');
}

/** Peak RSS of one mode across sizes: the spread the "flat" target is about. */
export interface Flatness {
  readonly mode: Mode;
  /** Peak RSS MiB by message count. */
  readonly peakRssMiB: Readonly<Record<string, number>>;
  /** Highest over lowest. */
  readonly maxOverMin: number;
  /** The target: within 15% of each other. */
  readonly target: number;
  readonly withinTarget: boolean;
}

/** How far apart a mode's peak RSS lies over the sizes measured (needs two sizes or more). */
export function flatness(mode: Mode, bySize: ReadonlyMap<number, number>, target = 1.15): Flatness | undefined {
  if (bySize.size < 2) return undefined;
  const values = [...bySize.values()];
  const maxOverMin = Math.max(...values) / Math.min(...values);
  return {
    mode,
    peakRssMiB: Object.fromEntries([...bySize].map(([messages, rss]) => [String(messages), Math.round(rss * 10) / 10])),
    maxOverMin,
    target,
    withinTarget: maxOverMin <= target,
  };
}

/** One line per mode: `peak RSS across sizes, export -> local zip: 109 / 122 / 125 MiB, max/min 1.15 (target <= 1.15)`. */
export function formatFlatness(result: Flatness): string {
  const sizes = Object.entries(result.peakRssMiB);
  return (
    `peak RSS across sizes, ${MODE_LABELS[result.mode]}: ` +
    `${sizes.map(([messages, rss]) => `${thousands(Number(messages))}: ${Math.round(rss)} MiB`).join(', ')}; ` +
    `max/min ${result.maxOverMin.toFixed(2)} (target <= ${result.target.toFixed(2)}: ${result.withinTarget ? 'met' : 'missed'})`
  );
}
