import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { Announcer } from '../announcer.js';
import { buildAnnouncement } from '../../pipeline/announce.js';
import { runConversationExport, type ConversationExportSummary } from '../../jobs/conversations/job.js';
import { DEFAULT_ROWS_PER_FILE, parseConversationRequest } from '../../jobs/conversations/request.js';
import { InvalidRequestError } from '../../jobs/errors.js';
import { outputTargetFor } from '../../sinks/targets.js';
import { openDatabase } from '../database.js';

/** The flags of `export conversations`, as commander parses them. */
export interface ConversationFlags {
  readonly merchant: string;
  readonly from: string;
  readonly to: string;
  readonly timezone?: string;
  readonly agent: string[];
  readonly provider: string[];
  readonly alias: string[];
  readonly status: string[];
  readonly out: string;
  readonly rowsPerFile: string;
  readonly bom: boolean;
  readonly formulaGuard: boolean;
  readonly requestId?: string;
  readonly email: string[];
  readonly locale: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Adds the flags of a conversation export to a command (`export conversations` and `demo` share them). */
export function conversationOptions(command: Command, defaults: Partial<Record<'merchant' | 'from' | 'to', string>> = {}): Command {
  const required = (flag: string, description: string, fallback: string | undefined): Command =>
    fallback === undefined ? command.requiredOption(flag, description) : command.option(flag, description, fallback);
  required('--merchant <id>', 'merchant whose chats are exported', defaults.merchant);
  required('--from <date|timestamp>', 'range start, inclusive: YYYY-MM-DD (midnight in the export zone) or ISO-8601 with offset', defaults.from);
  required('--to <date|timestamp>', 'range end, exclusive; at most 60 x 24 hours after --from', defaults.to);
  return command
    .option('--timezone <iana>', "export time zone (default: the merchant's)")
    .option('--agent <id>', 'only chats of this agent (repeatable)', collect, [])
    .option('--provider <name>', 'only chats of this provider (repeatable)', collect, [])
    .option('--alias <alias>', 'only chats with this alias (repeatable)', collect, [])
    .option('--status <status>', 'only chats in this status: OPENED, PICKED_UP, CLOSED (repeatable; CLOSED must be among them)', collect, [])
    .option('--out <uri>', 'where the zip goes: file://DIR or gs://BUCKET/PREFIX', 'file://./exports')
    .option('--rows-per-file <n>', 'data rows per CSV file inside the zip', String(DEFAULT_ROWS_PER_FILE))
    .option('--no-bom', 'do not start the CSV files with a UTF-8 byte order mark')
    .option('--no-formula-guard', "do not prefix ' to free-text cells starting with = + - @ TAB CR LF")
    .option('--request-id <id>', 'request id (default: a new UUID)')
    .option('--email <address>', 'e-mail the download link to this address (repeatable, at most 20)', collect, [])
    .option('--locale <locale>', 'language of the e-mail: en, es or pt', 'en');
}

/** Maps CLI flags onto the request document every entry point shares, so one schema validates both. */
export function requestFromFlags(flags: ConversationFlags): unknown {
  const rowsPerFile = /^\d+$/.test(flags.rowsPerFile) ? Number(flags.rowsPerFile) : flags.rowsPerFile;
  return {
      kind: 'conversations',
      ...(flags.requestId === undefined ? {} : { requestId: flags.requestId }),
      merchantId: flags.merchant,
      from: flags.from,
      to: flags.to,
      ...(flags.timezone === undefined ? {} : { timezone: flags.timezone }),
      filters: { agentIds: flags.agent, providers: flags.provider, aliases: flags.alias, statuses: flags.status },
    csv: { bom: flags.bom, formulaGuard: flags.formulaGuard, rowsPerFile },
    recipients: flags.email,
    locale: flags.locale,
  };
}

const FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  requestId: '--request-id',
  merchantId: '--merchant',
  from: '--from',
  to: '--to',
  timezone: '--timezone',
  'filters.agentIds': '--agent',
  'filters.providers': '--provider',
  'filters.aliases': '--alias',
  'filters.statuses': '--status',
  'csv.rowsPerFile': '--rows-per-file',
  recipients: '--email',
  locale: '--locale',
};

/** Restates a request error in terms of the flag the user typed. */
export function inFlagTerms(error: InvalidRequestError): InvalidRequestError {
  const flag = FLAG_OF_FIELD[error.field.replace(/\[\d+\]$/, '')];
  if (flag === undefined) return error;
  return new InvalidRequestError(flag, error.message.slice(error.field.length + 2));
}

/**
 * Validates the flags, runs the export on the configured (or embedded) database and, when
 * recipients were given, announces the stored zip (only after the storage confirmed it; a rerun
 * that finds the zip stored announces again without exporting again).
 */
export async function exportConversations(
  flags: ConversationFlags,
  logger: Logger,
  signal: AbortSignal,
  announcer: () => Announcer,
): Promise<ConversationExportSummary> {
  let request;
  try {
    request = parseConversationRequest(requestFromFlags(flags));
  } catch (error) {
    throw error instanceof InvalidRequestError ? inFlagTerms(error) : error;
  }
  const output = outputTargetFor(flags.out);
  // Resolved before any work, so a bad Pub/Sub configuration fails before the export, not after.
  const announce = request.recipients.length > 0 ? announcer() : undefined;
  const database = await openDatabase(logger, { allowEmbedded: true });
  try {
    const result = await runConversationExport(request, { pool: database.pool, output, signal, logger });
    if (announce !== undefined) {
      const { resolved } = result;
      const announcement = buildAnnouncement(
        {
          requestId: request.requestId,
          kind: 'conversations',
          merchantId: request.merchantId,
          recipients: request.recipients,
          locale: request.locale,
          parameters: {
            from: flags.from,
            to: flags.to,
            timezone: resolved.timezone,
            filters: {
              agentIds: request.filters.agentIds,
              providers: request.filters.providers,
              aliases: request.filters.aliases,
              statuses: request.filters.statuses,
            },
          },
        },
        result.stored,
        result.summary,
        new Date(),
      );
      const messageId = await announce.announce(announcement);
      logger.info({ requestId: request.requestId, messageId, recipients: request.recipients.length }, 'export announced');
    }
    return result.summary;
  } catch (error) {
    throw error instanceof InvalidRequestError ? inFlagTerms(error) : error;
  } finally {
    await announce?.close();
    await database.close();
  }
}
