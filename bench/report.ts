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
  /**
   * CPU seconds (user + system) of the measured process(es), every thread, start-up included;
   * null or absent where not measured (no GNU time).
   */
  readonly cpuSeconds?: number | null;
  /**
   * CPU seconds (user + system) of the PostgreSQL backends that served the run (parallel workers
   * included); null or absent where not measured (a server on another machine, or no query).
   */
  readonly backendCpuSeconds?: number | null;
}

/** The modes, in the order each round runs them (A B C ... A B C ...). */
export const MODES = ['copy', 'psql', 'export', 'xlsx', 'cli', 'cli-plain', 'gcs', 'mailer'] as const;
export type Mode = (typeof MODES)[number];

/** How each mode is named in the tables. */
export const MODE_LABELS: Readonly<Record<Mode, string>> = {
  copy: 'COPY csv -> Node deflate 6 (baseline)',
  psql: '`psql \\copy ... \\| zip -6`',
  export: '`export conversations` -> local zip',
  xlsx: '`export conversations --format xlsx` -> local .xlsx',
  cli: '`node --max-semi-space-size=2 dist/cli/main.js export conversations` -> local zip (whole CLI: the shebang, `npm start`, the container)',
  'cli-plain': '`node dist/cli/main.js export conversations` -> local zip (whole CLI, no V8 flags)',
  gcs: '`export conversations` -> gs:// (test server)',
  mailer: '`mailer`: 100 e-mails -> local SMTP',
};

/** The modes whose output is a zip of the export's CSV: their members are hashed and compared. */
export const ZIP_MODES = ['export', 'cli', 'cli-plain', 'gcs'] as const satisfies readonly Mode[];
export type ZipMode = (typeof ZIP_MODES)[number];

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
  /** Median CPU seconds of the measured process(es) per 1M rows; null where not measured. */
  readonly cpuPerMillionRows: number | null;
  /** Median CPU seconds of the PostgreSQL backends per 1M rows; null where not measured. */
  readonly backendCpuPerMillionRows: number | null;
  /** Median bytes over `zip -6`'s of the same CSV; null for the baseline, the mailer, or when not measured. */
  readonly zipRatio: number | null;
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
export function summarise(
  mode: Mode,
  runs: readonly RunFigures[],
  baselineSeconds: number | undefined,
  fallbackRows?: number,
  zip6Bytes?: number,
): ModeSummary {
  const seconds = runs.map((run) => run.seconds);
  const wall = median(seconds);
  const rows = runs[0]?.rows ?? fallbackRows ?? null;
  const rss = runs.map((run) => run.maxRssMiB).filter((value): value is number => value !== null);
  const bytes = median(runs.map((run) => run.bytes));
  return {
    mode,
    label: MODE_LABELS[mode],
    runs,
    medianSeconds: wall,
    minSeconds: Math.min(...seconds),
    maxSeconds: Math.max(...seconds),
    rowsPerSecond: rows === null ? null : rows / wall,
    megabytesPerSecond: bytes / wall / 1e6,
    peakRssMiB: rss.length === runs.length && rss.length > 0 ? Math.max(...rss) : null,
    ratioToBaseline: mode === 'mailer' || baselineSeconds === undefined ? null : wall / baselineSeconds,
    cpuPerMillionRows: mode === 'mailer' ? null : perMillionRows(runs.map((run) => run.cpuSeconds), rows),
    backendCpuPerMillionRows: mode === 'mailer' ? null : perMillionRows(runs.map((run) => run.backendCpuSeconds), rows),
    zipRatio: mode === 'copy' || mode === 'mailer' || zip6Bytes === undefined || zip6Bytes <= 0 ? null : bytes / zip6Bytes,
  };
}

/**
 * The median of per-run CPU seconds, scaled to 1M rows; null unless every run measured it (a
 * median of some runs would hide the ones that could not) and the rows are known.
 */
export function perMillionRows(cpuSeconds: readonly (number | null | undefined)[], rows: number | null): number | null {
  if (rows === null || rows <= 0 || cpuSeconds.length === 0) return null;
  const measured = cpuSeconds.filter((value): value is number => typeof value === 'number' && Number.isFinite(value));
  if (measured.length !== cpuSeconds.length) return null;
  return (median(measured) / rows) * 1e6;
}

const thousands = (value: number): string => Math.round(value).toLocaleString('en-US');

/** The markdown table of one size: one row per mode. */
export function formatTable(messages: number, summaries: readonly ModeSummary[]): string {
  const lines = [
    `${thousands(messages)} messages:`,
    '',
    '| command | wall s (median) | range | rows/s | out MB/s | peak RSS MiB | CPU s / 1M rows | + PG backend | vs COPY | zip vs zip -6 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const fixed = (value: number | null, digits: number, suffix = ''): string => (value === null ? 'n/a' : `${value.toFixed(digits)}${suffix}`);
  for (const summary of summaries) {
    const rate = summary.rowsPerSecond === null ? 'n/a' : `${thousands(summary.rowsPerSecond)}${summary.mode === 'mailer' ? ' e-mails/s' : ''}`;
    lines.push(
      `| ${summary.label} | ${summary.medianSeconds.toFixed(2)} | ${summary.minSeconds.toFixed(2)}-${summary.maxSeconds.toFixed(2)} | ` +
        `${rate} | ${summary.mode === 'mailer' ? 'n/a' : summary.megabytesPerSecond.toFixed(1)} | ` +
        `${summary.peakRssMiB === null ? 'n/a' : Math.round(summary.peakRssMiB)} | ` +
        `${fixed(summary.cpuPerMillionRows, 2)} | ${fixed(summary.backendCpuPerMillionRows, 2)} | ` +
        `${fixed(summary.ratioToBaseline, 2, 'x')} | ${fixed(summary.zipRatio, 3)} |`,
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

/** What the bench read back from one zip row's last zip: its members' uncompressed bytes, in order. */
export interface CsvDigest {
  /** sha256 (hex) over every member's uncompressed bytes, in the zip's order. */
  readonly sha256: string;
  /** Their length. */
  readonly csvBytes: number;
}

/** The CSV digests of one size: each zip row's, whether they agree, and `zip -6`'s size of that CSV. */
export interface OutputCheck {
  readonly digests: Partial<Record<ZipMode, CsvDigest>>;
  /** The one digest every zip row produced; undefined when they differ (a break) or none ran. */
  readonly sha256: string | undefined;
  readonly csvBytes: number | undefined;
  /** `zip -6 - -` of that CSV, bytes (the zip rows' ratio is over this). */
  readonly zip6Bytes: number | undefined;
  /** What went wrong: rows that disagree, or a hash other than the one expected. Empty when fine. */
  readonly problems: readonly string[];
}

/**
 * Compares the zip rows' digests with each other and with the one expected (`--expect-csv-sha256`)
 * at this size. The same rows of the same data must give the same bytes, whichever way the CLI was
 * launched, so any difference is a break, never noise.
 */
export function checkOutputs(
  digests: Partial<Record<ZipMode, CsvDigest>>,
  zip6Bytes: number | undefined,
  expected: string | undefined,
): OutputCheck {
  const problems: string[] = [];
  const hashes = new Set(Object.values(digests).map((digest) => digest.sha256));
  if (hashes.size > 1) {
    problems.push(`the zip rows' CSVs differ: ${Object.entries(digests).map(([mode, digest]) => `${mode} ${digest.sha256} (${digest.csvBytes} bytes)`).join(', ')}`);
  }
  const sha256 = hashes.size === 1 ? [...hashes][0] : undefined;
  if (expected !== undefined) {
    if (hashes.size === 0) problems.push(`expected CSV sha256 ${expected}, but no zip row ran to hash`);
    else if (sha256 !== expected) problems.push(`expected CSV sha256 ${expected}, got ${[...hashes].join(', ')}`);
  }
  const first = Object.values(digests)[0];
  return { digests, sha256, csvBytes: sha256 === undefined ? undefined : first?.csvBytes, zip6Bytes, problems };
}

/**
 * `--expect-csv-sha256`: `HASH` (only with one size) or `MESSAGES=HASH[,MESSAGES=HASH...]`, each
 * hash 64 hex digits; keyed by message count.
 * @throws TypeError naming --expect-csv-sha256 and what was wrong.
 */
export function parseExpectedHashes(text: string | undefined, sizes: readonly number[]): ReadonlyMap<number, string> {
  const expected = new Map<number, string>();
  if (text === undefined) return expected;
  const hash = (value: string): string => {
    if (!/^[0-9a-f]{64}$/i.test(value)) throw new TypeError(`Expected --expect-csv-sha256 to give sha256 hashes (64 hex digits), got ${JSON.stringify(value)}`);
    return value.toLowerCase();
  };
  for (const part of text.split(',').map((item) => item.trim()).filter((item) => item !== '')) {
    const at = part.indexOf('=');
    if (at < 0) {
      if (sizes.length !== 1) throw new TypeError(`Expected --expect-csv-sha256 as MESSAGES=HASH pairs with several --messages sizes, got ${JSON.stringify(part)}`);
      expected.set(sizes[0] as number, hash(part));
      continue;
    }
    const messages = Number(part.slice(0, at).replace(/_/g, ''));
    if (!sizes.includes(messages)) {
      throw new TypeError(`Expected --expect-csv-sha256 to name sizes among --messages (${sizes.join(', ')}), got ${JSON.stringify(part.slice(0, at))}`);
    }
    expected.set(messages, hash(part.slice(at + 1)));
  }
  if (expected.size === 0) throw new TypeError('Expected --expect-csv-sha256 to give at least one hash');
  return expected;
}

/** The footer line of a size: the CSV's hash and `zip -6`'s size of it. */
export function formatOutputCheck(check: OutputCheck): string {
  const rows = Object.keys(check.digests);
  if (rows.length === 0) return 'CSV sha256: n/a (no zip row ran)';
  const hash =
    check.sha256 === undefined
      ? `CSV sha256: DIFFERS between rows`
      : `CSV sha256 (${rows.join(', ')} alike): ${check.sha256}, ${thousands(check.csvBytes ?? 0)} bytes`;
  return `${hash}; \`zip -6\` of it: ${check.zip6Bytes === undefined ? 'n/a' : `${thousands(check.zip6Bytes)} bytes`}`;
}
