import { parseAnnouncement, type ReadyAnnouncement } from '../../jobs/announcement.js';
import type { DownloadLink } from '../../jobs/mailer/templates.js';

/** The JSON of a valid ready announcement, as the export publishes it; `overrides` replace fields. */
export function announcementJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: 'req-2026-11-21-0001',
    kind: 'conversations',
    merchantId: '42',
    bucket: 'exports-bucket',
    object: 'conversations/merchant-42/conversations_merchant-42_2026-09-01_2026-10-31_req.zip',
    generation: '1763751900123456',
    bytes: 1_234_567,
    rows: 123_456,
    files: ['conversations_merchant-42_2026-09-01_2026-10-31.csv'],
    recipients: ['ana@example.com', 'bruno@example.org', 'carla@example.net'],
    locale: 'en',
    linkSeconds: 604_800,
    createdAt: '2026-11-21T19:05:00.000Z',
    uri: 'gs://exports-bucket/conversations/merchant-42/conversations_merchant-42_2026-09-01_2026-10-31_req.zip',
    parameters: {
      from: '2026-09-01',
      to: '2026-10-31',
      timezone: 'America/Bogota',
      filters: { agentIds: [], providers: ['WHATSAPP'], aliases: [], statuses: ['CLOSED'] },
    },
    ...overrides,
  };
}

/** {@link announcementJson} as a Pub/Sub message's data. */
export function announcementData(overrides: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify(announcementJson(overrides)));
}

/** {@link announcementJson}, parsed. */
export function readyAnnouncement(overrides: Record<string, unknown> = {}): ReadyAnnouncement {
  return parseAnnouncement(announcementJson(overrides));
}

/**
 * A stand-in for the signer: a signed-looking https URL for the announced object (with `&` in the
 * query, as real V4 signatures have), valid for the announced number of seconds after it was made.
 */
export async function fakeSignLink(announcement: ReadyAnnouncement): Promise<DownloadLink> {
  return {
    url: `https://storage.example.test/${announcement.bucket}/${announcement.object}?generation=${announcement.generation}&X-Goog-Expires=${announcement.linkSeconds}&X-Goog-Signature=5f2a9c`,
    expiresAt: new Date(Date.parse(announcement.createdAt) + announcement.linkSeconds * 1000),
  };
}
