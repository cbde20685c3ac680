import { constants, deflateRawSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../db/seed.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations } from './support/export.js';
import { readZipCompressedSizes } from './support/zip.js';

const db = useTestDatabase();

/**
 * The compressed size the zip writer gives `data` at `level`: 1 MiB segments, each deflated on its
 * own with the previous 32 KiB as its dictionary, ended by a sync flush, the last one finished.
 */
function segmentedDeflateBytes(data: Buffer, level: number): number {
  const segment = 1024 * 1024;
  let bytes = 0;
  for (let start = 0; start < data.length; start += segment) {
    const last = start + segment >= data.length;
    bytes += deflateRawSync(data.subarray(start, start + segment), {
      level,
      finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
      ...(start > 0 ? { dictionary: data.subarray(start - 32 * 1024, start) } : {}),
    }).length;
  }
  return bytes;
}
beforeAll(() => seed(db.pool, { merchants: 1, messages: 20_000 }));

describe('the conversation zip\'s deflate level', () => {
  it('is 5: the bytes of a level-5 deflate of the CSV in the writer\'s segments, not level 6\'s', async () => {
    const { summary, csvFiles } = await exportConversations(db.pool, { merchantId: 1, from: '2026-09-01', to: '2026-10-30' });
    const [name, csv] = [...csvFiles][0]!;
    expect(summary.rows).toBeGreaterThan(10_000);
    const sizes = await readZipCompressedSizes(fileURLToPath(summary.uri));
    // Over one segment, so the seams are part of what is compared.
    expect(csv.length).toBeGreaterThan(1024 * 1024);
    const level5 = segmentedDeflateBytes(csv, 5);
    const level6 = segmentedDeflateBytes(csv, 6);
    // Levels differ on data this size; otherwise the test could not tell them apart.
    expect(level5).not.toBe(level6);
    expect(sizes.get(name)).toBe(level5);
  });
});
