import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { ProgressStarter } from '../../pipeline/progress.js';
import type { StopSlotsSummary } from '../../jobs/stop-slots/job.js';
import { parseStopSlotsRequest, type StopSlotsRequest } from '../../jobs/stop-slots/request.js';
import type { Announcer } from '../announcer.js';
import type { Database } from '../database.js';
import { collect, COMMON_FLAG_OF_FIELD, runReportCommand } from './report-command.js';

/** The flags of `export stop-slots`, as commander parses them. */
export interface StopSlotsFlags {
  readonly merchant: string;
  readonly from: string;
  readonly to: string;
  readonly timezone?: string;
  readonly bot: string[];
  readonly out: string;
  readonly format: string;
  readonly bom: boolean;
  readonly formulaGuard: boolean;
  readonly requestId?: string;
  readonly email: string[];
  readonly locale: string;
  /** False with `--no-progress`. */
  readonly progress: boolean;
}


/** Adds the flags of `export stop-slots`. */
export function stopSlotsOptions(command: Command): Command {
  return command
    .requiredOption('--merchant <id>', 'merchant whose bots are reported')
    .requiredOption('--from <date|timestamp>', 'dialogs created from (inclusive): YYYY-MM-DD (midnight in the zone) or ISO-8601 with offset')
    .requiredOption('--to <date|timestamp>', 'to (exclusive); no 60-day limit')
    .option('--timezone <iana>', "time zone of the dates (default: the merchant's)")
    .option('--bot <id>', 'report on this bot (repeatable; default every bot of the merchant)', collect, [])
    .option('--out <uri>', 'where the CSV files go: file://DIR or gs://BUCKET/PREFIX', 'file://./exports')
    .option('--format <csv|xlsx>', "csv: one CSV per bot; xlsx: one Excel workbook (.xlsx) per bot, typed cells", 'csv')
    .option('--no-bom', 'do not start the CSV files with a UTF-8 byte order mark')
    .option('--no-formula-guard', "do not prefix ' to free-text cells starting with = + - @ TAB CR LF")
    .option('--request-id <id>', 'request id (default: a new UUID)')
    .option('--email <address>', 'e-mail each bot\'s 24-hour download link to this address (repeatable, at most 20)', collect, [])
    .option('--locale <locale>', 'language of the e-mails: en, es or pt', 'en')
    .option('--no-progress', 'no progress bar (terminal) or progress lines (otherwise) on stderr');
}

const FLAG_OF_FIELD: Readonly<Record<string, string>> = { ...COMMON_FLAG_OF_FIELD, botIds: '--bot' };

/**
 * Validates the flags and writes one CSV per bot from one snapshot (see {@link runReportCommand});
 * a `--bot` that is not the merchant's is rejected before anything is written. With `database`, on
 * it, left open.
 */
export async function exportStopSlots(
  flags: StopSlotsFlags,
  logger: Logger,
  signal: AbortSignal,
  announcer: () => Announcer,
  progress: ProgressStarter,
  database?: Database,
): Promise<StopSlotsSummary> {
  const parse = (): StopSlotsRequest =>
    parseStopSlotsRequest({
      kind: 'stop-slots',
      format: flags.format,
      ...(flags.requestId === undefined ? {} : { requestId: flags.requestId }),
      merchantId: flags.merchant,
      from: flags.from,
      to: flags.to,
      ...(flags.timezone === undefined ? {} : { timezone: flags.timezone }),
      botIds: flags.bot,
      csv: { bom: flags.bom, formulaGuard: flags.formulaGuard },
      recipients: flags.email,
      locale: flags.locale,
    });
  return (await runReportCommand(parse, flags.out, FLAG_OF_FIELD, logger, signal, announcer, progress, database)) as StopSlotsSummary;
}
