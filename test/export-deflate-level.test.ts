import { deflateRawSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../db/seed.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations } from './support/export.js';
import { readZipCompressedSizes } from './support/zip.js';

const db = useTestDatabase();
beforeAll(() => seed(db.pool, { merchants: 1, messages: 20_000 }));

describe('the conversation zip\'s deflate level', () => {
  it('is 5: the bytes of a one-shot level-5 deflate of the CSV, not level 6\'s', async () => {
    const { summary, csvFiles } = await exportConversations(db.pool, { merchantId: 1, from: '2026-09-01', to: '2026-10-30' });
    const [name, csv] = [...csvFiles][0]!;
    expect(summary.rows).toBeGreaterThan(10_000);
    const sizes = await readZipCompressedSizes(fileURLToPath(summary.uri));
    const level5 = deflateRawSync(csv, { level: 5 }).length;
    const level6 = deflateRawSync(csv, { level: 6 }).length;
    // Levels differ on data this size; otherwise the test could not tell them apart.
    expect(level5).not.toBe(level6);
    expect(sizes.get(name)).toBe(level5);
  });
});
