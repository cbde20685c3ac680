import { LINK_SECONDS, type Locale, type ReadyAnnouncement } from '../jobs/announcement.js';
import type { StoredObject } from '../sinks/output.js';

/** What an announcement says about the request behind an export. */
export interface AnnouncedRequest {
  readonly requestId: string;
  readonly kind: string;
  readonly merchantId: string;
  readonly recipients: readonly string[];
  readonly locale: Locale;
  readonly parameters: ReadyAnnouncement['parameters'];
  /** For reports with one file per bot: the bot of this file. */
  readonly report?: ReadyAnnouncement['report'];
}

/**
 * Builds the ready announcement of a stored export. The link's lifetime comes from the report kind
 * (7 days for conversations, 24 hours for stop-slots).
 */
export function buildAnnouncement(
  request: AnnouncedRequest,
  stored: StoredObject,
  contents: { readonly rows: number; readonly files: readonly string[] },
  createdAt: Date,
): ReadyAnnouncement {
  const linkSeconds = LINK_SECONDS[request.kind];
  if (linkSeconds === undefined) throw new TypeError(`No link lifetime is defined for report kind ${JSON.stringify(request.kind)}`);
  return {
    ...(request.report === undefined ? {} : { report: request.report }),
    requestId: request.requestId,
    kind: request.kind,
    merchantId: request.merchantId,
    bucket: stored.gcs?.bucket ?? null,
    object: stored.gcs?.object ?? new URL(stored.uri).pathname,
    generation: stored.gcs?.generation ?? '0',
    bytes: stored.bytes,
    rows: contents.rows,
    files: [...contents.files],
    recipients: [...request.recipients],
    locale: request.locale,
    linkSeconds,
    createdAt: createdAt.toISOString(),
    uri: stored.uri,
    parameters: request.parameters,
  };
}
