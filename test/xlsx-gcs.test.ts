import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConversationExport } from '../jobs/conversations/job.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { isAbortError } from '../jobs/errors.js';
import { FileOutputTarget } from '../sinks/file.js';
import { createStorageClient, GcsOutputTarget } from '../sinks/gcs.js';
import { XLSX_CONTENT_TYPE } from '../transforms/xlsx.js';
import { useTestDatabase } from './support/database.js';
import { silentLogger, temporaryDirectory } from './support/export.js';
import { createTestServiceAccount, startFakeGcs, type FakeGcs } from './support/fake-gcs.js';
import { loadFixture } from './support/fixture.js';
import { loadVolume } from './support/volume.js';
import { readWithExceljs } from './support/xlsx-readers.js';

const BUCKET = 'audit-exports';
const PREFIX = 'xlsx';
const VOLUME_MERCHANT = 9;
const VOLUME_ROWS = 2000 * 50;
const NOW = new Date('2026-11-02T10:00:00Z');

const db = useTestDatabase();
const originalCredentials = process.env.GOOGLE_APPLICATION_CREDENTIALS;
let fake: FakeGcs;
let target: GcsOutputTarget;

beforeAll(async () => {
  await loadFixture(db.pool);
  await loadVolume(db.pool, VOLUME_MERCHANT, 2000, 50);
  fake = await startFakeGcs({ buckets: [BUCKET] });
  const account = await createTestServiceAccount(fake, await temporaryDirectory());
  process.env.GOOGLE_APPLICATION_CREDENTIALS = account.keyFile;
  const storage = createStorageClient({
    GCS_API_ENDPOINT: fake.url,
    GOOGLE_APPLICATION_CREDENTIALS: account.keyFile,
    GOOGLE_CLOUD_PROJECT: account.projectId,
  });
  target = new GcsOutputTarget(storage, { bucket: BUCKET, prefix: PREFIX });
}, 120_000);

afterAll(async () => {
  if (originalCredentials === undefined) delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
  else process.env.GOOGLE_APPLICATION_CREDENTIALS = originalCredentials;
  await fake?.close();
});

const xlsxRequest = (merchantId: number, requestId: string) =>
  parseConversationRequest({ merchantId, from: '2026-09-01', to: '2026-10-31', format: 'xlsx', requestId });

describe('an XLSX export to gs://', () => {
  it('stores the same workbook as the file export, as a workbook, and readers see the same cells', async () => {
    const request = xlsxRequest(1, 'xlsx-gcs');
    const context = { pool: db.pool, signal: new AbortController().signal, logger: silentLogger, now: NOW };
    const local = await runConversationExport(request, { ...context, output: new FileOutputTarget(await temporaryDirectory()) });
    const remote = await runConversationExport(request, { ...context, output: target });

    const name = remote.summary.uri.slice(`gs://${BUCKET}/`.length);
    expect(name).toBe(`${PREFIX}/${local.summary.uri.split('/').pop()}`);
    const object = fake.object(BUCKET, name);
    expect(object?.contentType).toBe(XLSX_CONTENT_TYPE);
    expect(remote.summary).toMatchObject({ format: 'xlsx', rows: local.summary.rows, files: ['Conversations'], bytes: object?.size });
    const localBytes = await readFile(fileURLToPath(local.summary.uri));
    expect(object?.bytes.equals(localBytes)).toBe(true);

    const copy = join(await temporaryDirectory(), 'from-gcs.xlsx');
    await writeFile(copy, object!.bytes);
    expect(await readWithExceljs(copy)).toEqual(await readWithExceljs(fileURLToPath(local.summary.uri)));
  });

  it('holds the database read while the upload is stalled, and an abort then leaves no object', async () => {
    const resume = fake.pauseUploads();
    const controller = new AbortController();
    let rowsSoFar = 0;
    try {
      const running = runConversationExport(xlsxRequest(VOLUME_MERCHANT, 'xlsx-gcs-stalled'), {
        pool: db.pool,
        output: target,
        signal: controller.signal,
        logger: silentLogger,
        onProgress: ({ rows }) => {
          rowsSoFar = rows ?? rowsSoFar;
        },
      }).then(
        () => undefined,
        (error: unknown) => error,
      );
      // Rows stop once every bounded buffer between the COPY and the stalled upload is full.
      let settled = -1;
      for (let wait = 0; wait < 100; wait++) {
        await sleep(50);
        if (rowsSoFar > 0 && rowsSoFar === settled) break;
        settled = rowsSoFar;
      }
      expect(rowsSoFar).toBeGreaterThan(0);
      expect(rowsSoFar).toBeLessThan(VOLUME_ROWS);
      controller.abort();
      const error = await running;
      expect(isAbortError(error), String(error)).toBe(true);
    } finally {
      resume();
    }
    expect([...fake.objects.keys()].filter((key) => key.includes('xlsx-gcs-stalled'))).toEqual([]);
    for (let wait = 0; wait < 50 && fake.uploadsInProgress() > 0; wait++) await sleep(20);
    expect(fake.uploadsInProgress()).toBe(0);
  });
});
