import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import { runCliWithin, type CliResult } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, temporaryDirectory } from './support/export.js';
import { startFakeGcs, type FakeGcs } from './support/fake-gcs.js';
import { loadFixture } from './support/fixture.js';
import { loadVolume } from './support/volume.js';

/**
 * Hostile `--out` values (and OUTPUT_URI): every one must end with a clear error naming the flag
 * and leave nothing anywhere (no file, no hidden temporary or `.NAME.metadata.json` file, no
 * object in Cloud Storage). The file-system cases use real mounts: the tests run as root, whom
 * permissions do not stop, so a read-only folder is a read-only tmpfs and a full disk a tiny one.
 */

const db = useTestDatabase();
let fake: FakeGcs;
/** A folder holding this file's mount points and plain files. */
let base: string;
/** A read-only tmpfs. */
let readOnly: string;
/** A 64 KiB tmpfs: smaller than the volume merchant's zip. */
let full: string;
/** A plain file, where a folder is expected. */
let plainFile: string;
const mounted: string[] = [];
/** Each refusal takes well under a second; a run still going after this long hangs (the old mkdir under /proc did). */
const FAST_MS = 8_000;

function mountTmpfs(target: string, options: string): void {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target], { stdio: 'pipe' });
  } catch (error) {
    // CI is this same kind of machine, as root: mount must work there, so this is a failure, not a skip.
    throw new Error(`these tests need to mount a tmpfs (as root): mount -t tmpfs -o ${options} tmpfs ${target} failed: ${(error as Error).message}`);
  }
  mounted.push(target);
}

beforeAll(async () => {
  await loadFixture(db.pool);
  // About 4 MB of CSV: its zip cannot fit the 64 KiB disk.
  await loadVolume(db.pool, 9, 400, 25);
  await migrateState(db.pool);
  fake = await startFakeGcs({ buckets: ['audit-exports'] });
  base = await temporaryDirectory('audit-export-hostile-out-');
  readOnly = join(base, 'read-only');
  full = join(base, 'full');
  await mkdir(readOnly);
  await mkdir(full);
  mountTmpfs(readOnly, 'ro,size=1m');
  mountTmpfs(full, 'size=64k');
  plainFile = join(base, 'plain.txt');
  await writeFile(plainFile, 'not a folder');
}, 120_000);

afterAll(async () => {
  for (const target of mounted.reverse()) execFileSync('umount', [target]);
  await fake?.close();
  if (base !== undefined) await rm(base, { recursive: true, force: true });
});

/** `export conversations` of the fixture merchant into `out`, in a fresh empty working folder. */
async function exportTo(out: string, extra: Record<string, string> = {}, merchant = '1'): Promise<{ result: CliResult; cwd: string }> {
  const cwd = await temporaryDirectory();
  const args = ['export', 'conversations', '--merchant', merchant, '--from', '2026-09-01', '--to', '2026-10-01', '--out', out, '--no-progress'];
  const result = await runCliWithin(FAST_MS, args, { DATABASE_URL: db.url, STORAGE_EMULATOR_HOST: fake.url, GOOGLE_CLOUD_PROJECT: 'audit-export-test', ...extra }, cwd);
  return { result, cwd };
}

/** Nothing under `directory` at any depth, hidden files included. */
async function everything(directory: string): Promise<string[]> {
  return (await readdir(directory, { recursive: true })).sort();
}

/** Paths under /proc and /sys: mkdir there fails oddly (ENOENT for a folder whose parent exists, EPERM). */
const PSEUDO_FILE_SYSTEMS = ['file:///proc/x', 'file:///proc/audit-export/a/b', 'file:///sys/audit-export', 'file:///proc/self/status'];

describe('--out on a folder that cannot be written', () => {
  it.each(PSEUDO_FILE_SYSTEMS)(
    '%s fails fast with exit 2 naming --out and the path, and creates nothing (regression: mkdir -p under /proc never returned)',
    async (out) => {
      const { result, cwd } = await exportTo(out);
      const path = out.slice('file://'.length);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain(`--out: `);
      expect(result.stderr).toContain(path);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(path)).toBe(path === '/proc/self/status');
      expect(await everything(cwd)).toEqual([]);
    },
    15_000,
  );

  it('a read-only file system: exit 2 naming --out, the folder and EROFS; nothing written', async () => {
    for (const out of [readOnly, join(readOnly, 'sub', 'dir')]) {
      const { result } = await exportTo(`file://${out}`);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/--out: .*read-only/);
      expect(result.stderr).toContain(out);
      expect(await everything(readOnly)).toEqual([]);
    }
  });

  it('a path that is a file, or inside a file: exit 2 naming --out and the file; the file is untouched', async () => {
    for (const out of [plainFile, join(plainFile, 'sub')]) {
      const { result } = await exportTo(`file://${out}`);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/--out: .*is not a folder/);
      expect(result.stderr).toContain(plainFile);
      expect(await readFile(plainFile, 'utf8')).toBe('not a folder');
      expect(await listFiles(base)).toEqual(['full', 'plain.txt', 'read-only']);
    }
  });

  it('a full disk: exit 1 naming the disk-full error (ENOSPC), and no partial zip or hidden temporary file left', async () => {
    const { result } = await exportTo(`file://${full}`, {}, '9');
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/audit-export: failed: .*(ENOSPC|no space left on device)/i);
    expect(await everything(full)).toEqual([]);
  });

  it('backfill onto a full disk: the unit fails (exit 1, ENOSPC) and no zip, temporary or .NAME.metadata.json file is left', async () => {
    const result = await runCliWithin(FAST_MS, 
      ['backfill', '--from', '2026-09-01', '--to', '2026-10-01', '--merchant', '9', '--out', `file://${full}`, '--no-progress'],
      { DATABASE_URL: db.url },
    );
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/backfill unit failed: .*(ENOSPC|no space left on device)/i);
    expect(result.summary).toMatchObject({ kind: 'backfill', units: 1, done: 0, failed: 1 });
    expect(await everything(full)).toEqual([]);
  });

  it('backfill onto a read-only folder or a file: exit 2 naming --out before any unit runs', async () => {
    for (const out of [readOnly, plainFile, '/proc/x']) {
      const result = await runCliWithin(FAST_MS, ['backfill', '--from', '2026-09-01', '--to', '2026-10-01', '--merchant', '1', '--out', `file://${out}`, '--no-progress'], {
        DATABASE_URL: db.url,
      });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/invalid request: --out: /);
      expect(result.stderr).not.toContain('backfill unit');
    }
    expect(await everything(readOnly)).toEqual([]);
    expect(await readFile(plainFile, 'utf8')).toBe('not a folder');
  }, 20_000);

  it('run with OUTPUT_URI under /proc or on a read-only folder: exit 2 naming OUTPUT_URI, before the request is taken', async () => {
    for (const out of ['/proc/x', readOnly]) {
      const requestId = `hostile-out-${out === readOnly ? 'ro' : 'proc'}`;
      const result = await runCliWithin(FAST_MS, ['run', '--no-progress'], {
        DATABASE_URL: db.url,
        OUTPUT_URI: `file://${out}`,
        EXPORT_REQUEST: JSON.stringify({ kind: 'conversations', requestId, merchantId: 1, from: '2026-09-01', to: '2026-10-01' }),
      });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/invalid request: OUTPUT_URI: /);
      expect(result.stderr).toContain(out);
      const { rows } = await db.pool.query('SELECT 1 FROM audit_export_requests WHERE request_id = $1', [requestId]);
      expect(rows).toEqual([]);
    }
    expect(existsSync('/proc/x')).toBe(false);
    expect(await everything(readOnly)).toEqual([]);
  }, 20_000);
});

/** URIs that are not an output location at all: each is refused before anything is touched. */
const BAD_URIS: readonly [string, RegExp][] = [
  ['gs://', /--out: Invalid bucket name "" .*a bucket name is required/],
  ['gs:///x', /--out: Invalid bucket name "" .*a bucket name is required/],
  ['gs:///', /--out: Invalid bucket name ""/],
  ['gs://Audit-Exports/x', /--out: Invalid bucket name "Audit-Exports"/],
  ['gs://audit-exports/../x', /--out: Invalid prefix "\.\.\/x"/],
  ['gs://audit-exports//x', /--out: Invalid prefix "\/x"/],
  ['gs://audit-exports/a/./b', /--out: Invalid prefix "a\/\.\/b"/],
  ['gs://audit-exports/a\nb', /--out: Invalid prefix .*control characters/],
  ['gs:/audit-exports/x', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['GS://audit-exports/x', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['s3://audit-exports/x', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX, got "s3:\/\/audit-exports\/x"/],
  ['http://127.0.0.1:1/x', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['https://storage.googleapis.com/audit-exports/x', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['ftp:x', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['ftp://example/x', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['exports', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX, got "exports"/],
  ['./exports', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['../exports', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['/tmp/exports', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['C:\\exports', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['\\\\server\\share', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX, got ""/],
  [' ', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX, got " "/],
  ['file://', /--out: Expected a folder after file:\/\//],
  ['file:', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['file:/exports', /--out: expected file:\/\/DIR or gs:\/\/BUCKET\/PREFIX/],
  ['file://%zz', /--out: .*not a valid percent-encoded path/],
  ['file://exports%00x', /--out: .*NUL/],
];

describe('--out that is no output location', () => {
  it.each(BAD_URIS)('%j: exit 2 naming --out, nothing written locally or in Cloud Storage', async (out, message) => {
    const before = fake.requests.length;
    const { result, cwd } = await exportTo(out);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(await everything(cwd)).toEqual([]);
    expect(fake.requests.length).toBe(before);
    expect(fake.objects.size).toBe(0);
  });
});
