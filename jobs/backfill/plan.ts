import { InvalidRequestError } from '../errors.js';
import { isCalendarDate, parseId } from '../request-fields.js';

/**
 * Pure planning of a backfill: the units (one merchant, at most one calendar month each), their
 * deterministic order, and the share of them one task of a sharded run takes. No I/O here.
 */

/** One unit of a backfill: one merchant's chats created in `[from, to)`, inside one calendar month. */
export interface BackfillUnit {
  /** A positive bigint, as decimal text. */
  readonly merchantId: string;
  /** The calendar month, `YYYY-MM`. */
  readonly month: string;
  /** Range start, inclusive, `YYYY-MM-DD` (midnight in the merchant's zone). */
  readonly from: string;
  /** Range end, exclusive, `YYYY-MM-DD`; at most the 1st of the next month. */
  readonly to: string;
  /** Derived from the unit alone, so a rerun finds the unit's zip: `backfill-m42-2026-09`. */
  readonly requestId: string;
}

/** Which share of the units one task takes: positions `p` with `p % count == index`. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * Parses a backfill bound: a calendar date `YYYY-MM-DD`.
 * @throws InvalidRequestError naming `field`.
 */
export function parseBackfillDate(field: string, value: string): string {
  const match = DATE.exec(value);
  if (match === null || !isCalendarDate(Number(match[1]), Number(match[2]), Number(match[3]))) {
    throw new InvalidRequestError(field, `expected a calendar date YYYY-MM-DD, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The 1st of the month after `date` (`YYYY-MM-DD`). */
function firstOfNextMonth(date: string): string {
  const year = Number(date.slice(0, 4));
  const month = Number(date.slice(5, 7));
  return month === 12 ? `${String(year + 1).padStart(4, '0')}-01-01` : `${date.slice(0, 4)}-${String(month + 1).padStart(2, '0')}-01`;
}

/**
 * Splits `[from, to)` at the 1st of each month: one range per calendar month touched, the first and
 * last possibly partial. Dates compare as text (fixed-width `YYYY-MM-DD`).
 * @throws InvalidRequestError when `from` is not before `to`.
 */
export function splitMonths(from: string, to: string): { month: string; from: string; to: string }[] {
  if (from >= to) throw new InvalidRequestError('--from', `${from} is not before --to ${to}`);
  const ranges: { month: string; from: string; to: string }[] = [];
  for (let start = from; start < to; ) {
    const next = firstOfNextMonth(start);
    const end = next < to ? next : to;
    ranges.push({ month: start.slice(0, 7), from: start, to: end });
    start = end;
  }
  return ranges;
}

/** Orders merchant ids (decimal bigint text) numerically. */
export function compareMerchantIds(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Every unit of a backfill of `merchantIds` over `[from, to)`, sorted by merchant id (numerically),
 * then month; duplicate merchant ids count once.
 * @throws InvalidRequestError for an invalid merchant id (naming `--merchant`) or an empty range.
 */
export function planBackfillUnits(merchantIds: readonly string[], from: string, to: string): BackfillUnit[] {
  const months = splitMonths(from, to);
  const ids = [...new Set(merchantIds.map((id) => parseId('--merchant', id)))].sort(compareMerchantIds);
  return ids.flatMap((merchantId) =>
    months.map((range) => ({ merchantId, ...range, requestId: `backfill-m${merchantId}-${range.month}` })),
  );
}

/** The units of `units` (in order) that task `shard.index` of `shard.count` takes. */
export function shardUnits<T>(units: readonly T[], shard: Shard): T[] {
  return units.filter((_, position) => position % shard.count === shard.index);
}

function wholeNumber(source: string, value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidRequestError(source, `expected a whole number, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/**
 * The task's shard from the flags, which win, else `CLOUD_RUN_TASK_INDEX` / `CLOUD_RUN_TASK_COUNT`,
 * else task 0 of 1.
 * @throws InvalidRequestError naming the flag or variable: not whole numbers, a count of 0, or an
 * index not below the count.
 */
export function resolveShard(
  flags: { readonly taskIndex?: string | undefined; readonly taskCount?: string | undefined },
  env: NodeJS.ProcessEnv,
): Shard {
  const pick = (flag: string, flagValue: string | undefined, variable: string): { source: string; value: number } | undefined => {
    if (flagValue !== undefined) return { source: flag, value: wholeNumber(flag, flagValue) };
    const fromEnv = env[variable];
    if (fromEnv !== undefined && fromEnv !== '') return { source: variable, value: wholeNumber(variable, fromEnv) };
    return undefined;
  };
  const index = pick('--task-index', flags.taskIndex, 'CLOUD_RUN_TASK_INDEX') ?? { source: '--task-index', value: 0 };
  const count = pick('--task-count', flags.taskCount, 'CLOUD_RUN_TASK_COUNT') ?? { source: '--task-count', value: 1 };
  if (count.value < 1) throw new InvalidRequestError(count.source, `expected at least 1, got ${count.value}`);
  if (index.value >= count.value) {
    throw new InvalidRequestError(index.source, `expected a task index below the task count ${count.value} (${count.source}), got ${index.value}`);
  }
  return { index: index.value, count: count.value };
}
