import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { ProgressStarter } from '../../pipeline/progress.js';
import type { Announcer } from '../announcer.js';
import type { Database } from '../database.js';
import type { ConversationExportSummary } from '../../jobs/conversations/job.js';
import { DEFAULT_ROWS_PER_FILE, parseConversationRequest } from '../../jobs/conversations/request.js';
import { collect, COMMON_FLAG_OF_FIELD, runReportCommand } from './report-command.js';

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
  readonly format: string;
  readonly bom: boolean;
  readonly formulaGuard: boolean;
  readonly requestId?: string;
  readonly email: string[];
  readonly locale: string;
  /** False with `--no-progress`. */
  readonly progress: boolean;
}


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
    .option('--format <csv|xlsx>', 'csv: CSV files in a zip; xlsx: one Excel workbook (.xlsx, not zipped), typed cells', 'csv')
    .option('--rows-per-file <n>', 'data rows per CSV file inside the zip (per sheet with --format xlsx)', String(DEFAULT_ROWS_PER_FILE))
    .option('--no-bom', 'do not start the CSV files with a UTF-8 byte order mark')
    .option('--no-formula-guard', "do not prefix ' to free-text cells starting with = + - @ TAB CR LF")
    .option('--request-id <id>', 'request id (default: a new UUID)')
    .option('--email <address>', 'e-mail the download link to this address (repeatable, at most 20)', collect, [])
    .option('--locale <locale>', 'language of the e-mail: en, es or pt', 'en')
    .option('--no-progress', 'no progress bar (terminal) or progress lines (otherwise) on stderr');
}

/** Maps CLI flags onto the request document every entry point shares, so one schema validates both. */
export function requestFromFlags(flags: ConversationFlags): unknown {
  const rowsPerFile = /^\d+$/.test(flags.rowsPerFile) ? Number(flags.rowsPerFile) : flags.rowsPerFile;
  return {
    kind: 'conversations',
    format: flags.format,
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
  ...COMMON_FLAG_OF_FIELD,
  'filters.agentIds': '--agent',
  'filters.providers': '--provider',
  'filters.aliases': '--alias',
  'filters.statuses': '--status',
  'csv.rowsPerFile': '--rows-per-file',
};

/** Validates the flags and runs the export (see {@link runReportCommand}; `database`: run on it and leave it open). */
export async function exportConversations(
  flags: ConversationFlags,
  logger: Logger,
  signal: AbortSignal,
  announcer: () => Announcer,
  progress: ProgressStarter,
  database?: Database,
): Promise<ConversationExportSummary> {
  const summary = await runReportCommand(
    () => parseConversationRequest(requestFromFlags(flags)),
    flags.out,
    FLAG_OF_FIELD,
    logger,
    signal,
    announcer,
    progress,
    database,
  );
  return summary as ConversationExportSummary;
}
