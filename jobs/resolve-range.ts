import type { SnapshotSession } from '../sources/postgres-snapshot.js';
import { InvalidRequestError } from './errors.js';
import type { CommonRequestFields, RangeBound } from './request-fields.js';

/** A request checked against the database: the merchant exists, the zone is known, the range fits. */
export interface ResolvedRange<R extends CommonRequestFields> {
  readonly request: R;
  /** The export's IANA time zone: the request's, else the merchant's. */
  readonly timezone: string;
  /** Range start, inclusive, as an exact UTC timestamp literal for SQL. */
  readonly fromUtc: string;
  /** Range end, exclusive. */
  readonly toUtc: string;
  /** The bounds as local text in the export zone, for file names: `2026-09-01` or `2026-09-01T0830`. */
  readonly fromLabel: string;
  readonly toLabel: string;
}

interface ResolutionRow {
  merchant_timezone: string | null;
  timezone_known: boolean;
  from_utc: string | null;
  to_utc: string | null;
  range_ms: string | null;
  from_label: string | null;
  to_label: string | null;
}

function boundSql(position: number, bound: RangeBound): string {
  // A date is midnight in the export zone; PostgreSQL's zone rules decide it, the same rules that
  // format the exported timestamps.
  return bound.kind === 'date' ? `($${position}::date::timestamp AT TIME ZONE $3)` : `$${position}::timestamptz`;
}

function boundValue(bound: RangeBound): string {
  return bound.kind === 'date' ? bound.date : bound.iso;
}

/**
 * Resolves a request against the database with the client's current snapshot.
 * @throws InvalidRequestError for an unknown merchant or time zone, `from` not before `to`, or a
 * range longer than `maxRangeMs` (when given).
 */
export async function resolveRange<R extends CommonRequestFields>(
  client: Pick<SnapshotSession, 'query'>,
  request: R,
  maxRangeMs: number | undefined,
): Promise<ResolvedRange<R>> {
  const merchant = await client.query<{ timezone: string }>('SELECT timezone FROM merchants WHERE id = $1', [
    request.merchantId,
  ]);
  const merchantZone = merchant.rows[0]?.timezone;
  if (merchantZone === undefined) throw new InvalidRequestError('merchantId', `no merchant with id ${request.merchantId}`);
  const timezone = request.timezone ?? merchantZone;
  const known = await client.query<{ known: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS known',
    [timezone],
  );
  if (known.rows[0]?.known !== true) {
    const whose = request.timezone === undefined ? `merchant ${request.merchantId}'s time zone` : 'time zone';
    throw new InvalidRequestError('timezone', `unknown ${whose} ${JSON.stringify(timezone)} (expected an IANA name such as America/Bogota)`);
  }
  const from = boundSql(1, request.from);
  const to = boundSql(2, request.to);
  const label = (bound: string): string =>
    `CASE WHEN (${bound} AT TIME ZONE $3)::time = '00:00' THEN to_char(${bound} AT TIME ZONE $3, 'YYYY-MM-DD') ` +
    `ELSE to_char(${bound} AT TIME ZONE $3, 'YYYY-MM-DD"T"HH24MI') END`;
  const utc = (bound: string): string => `to_char(${bound} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  const { rows } = await client.query<ResolutionRow>(
    `SELECT ${utc(from)} AS from_utc, ${utc(to)} AS to_utc,
            (extract(epoch FROM ${to} - ${from}) * 1000)::text AS range_ms,
            ${label(from)} AS from_label, ${label(to)} AS to_label`,
    [boundValue(request.from), boundValue(request.to), timezone],
  );
  const row = rows[0];
  if (row?.from_utc == null || row.to_utc == null || row.range_ms == null || row.from_label == null || row.to_label == null) {
    throw new Error('Could not resolve the export range');
  }
  const rangeMs = Number(row.range_ms);
  if (rangeMs <= 0) throw new InvalidRequestError('from', `${boundValue(request.from)} is not before to ${boundValue(request.to)}`);
  if (maxRangeMs !== undefined && rangeMs > maxRangeMs) {
    const days = maxRangeMs / 86_400_000;
    throw new InvalidRequestError('to', `the range from ${boundValue(request.from)} to ${boundValue(request.to)} is longer than ${days} days (${days} x 24 hours)`);
  }
  return {
    request,
    timezone,
    fromUtc: row.from_utc,
    toUtc: row.to_utc,
    fromLabel: row.from_label,
    toLabel: row.to_label,
  };
}
