import type { Command } from 'commander';
import type { Logger } from 'pino';
import { InvalidRequestError } from '../../jobs/errors.js';
import { boundText } from '../../jobs/request-fields.js';
import { runStopSlotsReport, type StopSlotsSummary } from '../../jobs/stop-slots/job.js';
import { parseStopSlotsRequest } from '../../jobs/stop-slots/request.js';
import { buildAnnouncement } from '../../pipeline/announce.js';
import { outputTargetFor } from '../../sinks/targets.js';
import type { Announcer } from '../announcer.js';
import { openDatabase } from '../database.js';

/** The flags of `export stop-slots`, as commander parses them. */
export interface StopSlotsFlags {
  readonly merchant: string;
  readonly from: string;
  readonly to: string;
  readonly timezone?: string;
  readonly bot: string[];
  readonly out: string;
  readonly bom: boolean;
  readonly formulaGuard: boolean;
  readonly requestId?: string;
  readonly email: string[];
  readonly locale: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Adds the flags of `export stop-slots`. */
export function stopSlotsOptions(command: Command): Command {
  return command
    .requiredOption('--merchant <id>', 'merchant whose bots are reported')
    .requiredOption('--from <date|timestamp>', 'dialogs created from (inclusive): YYYY-MM-DD (midnight in the zone) or ISO-8601 with offset')
    .requiredOption('--to <date|timestamp>', 'to (exclusive); no 60-day limit')
    .option('--timezone <iana>', "time zone of the dates (default: the merchant's)")
    .option('--bot <id>', 'report on this bot (repeatable; default every bot of the merchant)', collect, [])
    .option('--out <uri>', 'where the CSV files go: file://DIR or gs://BUCKET/PREFIX', 'file://./exports')
    .option('--no-bom', 'do not start the CSV files with a UTF-8 byte order mark')
    .option('--no-formula-guard', "do not prefix ' to free-text cells starting with = + - @ TAB CR LF")
    .option('--request-id <id>', 'request id (default: a new UUID)')
    .option('--email <address>', 'e-mail each bot\'s 24-hour download link to this address (repeatable, at most 20)', collect, [])
    .option('--locale <locale>', 'language of the e-mails: en, es or pt', 'en');
}

const FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  requestId: '--request-id',
  merchantId: '--merchant',
  from: '--from',
  to: '--to',
  timezone: '--timezone',
  botIds: '--bot',
  recipients: '--email',
  locale: '--locale',
};

function inFlagTerms(error: InvalidRequestError): InvalidRequestError {
  const flag = FLAG_OF_FIELD[error.field.replace(/\[\d+\]$/, '')];
  if (flag === undefined) return error;
  return new InvalidRequestError(flag, error.message.slice(error.field.length + 2));
}

/**
 * Validates the flags, writes one CSV per bot from one snapshot and, with recipients, announces
 * each bot's file (24-hour links). A `--bot` that is not the merchant's is rejected before anything
 * is written.
 */
export async function exportStopSlots(
  flags: StopSlotsFlags,
  logger: Logger,
  signal: AbortSignal,
  announcer: () => Announcer,
): Promise<StopSlotsSummary> {
  let request;
  try {
    request = parseStopSlotsRequest({
      kind: 'stop-slots',
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
  } catch (error) {
    throw error instanceof InvalidRequestError ? inFlagTerms(error) : error;
  }
  const output = outputTargetFor(flags.out);
  const announce = request.recipients.length > 0 ? announcer() : undefined;
  const database = await openDatabase(logger, { allowEmbedded: true });
  try {
    const result = await runStopSlotsReport(request, { pool: database.pool, output, signal, logger });
    if (announce !== undefined) {
      for (const report of result.reports) {
        const announcement = buildAnnouncement(
          {
            requestId: request.requestId,
            kind: 'stop-slots',
            merchantId: request.merchantId,
            recipients: request.recipients,
            locale: request.locale,
            parameters: { from: boundText(request.from), to: boundText(request.to), timezone: result.timezone, filters: { botIds: [...request.botIds] } },
            report: { botId: report.botId, botName: report.botName },
          },
          report.stored,
          { rows: report.rows, files: [report.stored.uri.split('/').pop() ?? ''] },
          new Date(),
        );
        const messageId = await announce.announce(announcement);
        logger.info({ requestId: request.requestId, botId: report.botId, messageId }, 'report announced');
      }
    }
    return result.summary;
  } catch (error) {
    throw error instanceof InvalidRequestError ? inFlagTerms(error) : error;
  } finally {
    await announce?.close();
    await database.close();
  }
}
