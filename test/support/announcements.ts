import { randomUUID } from 'node:crypto';
import type { ReadyAnnouncement } from '../../jobs/announcement.js';

/** A valid ready announcement for tests, with `overrides` applied. */
export function sampleAnnouncement(overrides: Partial<ReadyAnnouncement> = {}): ReadyAnnouncement {
  const requestId = overrides.requestId ?? randomUUID();
  return {
    requestId,
    kind: 'conversations',
    merchantId: '42',
    bucket: 'audit-exports',
    object: `conversations/${requestId}.zip`,
    generation: '1731000000000000',
    bytes: 12_345,
    rows: 678,
    files: ['conversations_merchant-42_2026-09-01_2026-10-31.csv'],
    recipients: ['ops@example.com'],
    locale: 'en',
    linkSeconds: 604_800,
    createdAt: '2026-11-01T12:00:00.000Z',
    uri: `gs://audit-exports/conversations/${requestId}.zip`,
    parameters: { from: '2026-09-01', to: '2026-10-31', timezone: 'America/Bogota', filters: {} },
    ...overrides,
  };
}
