import { describe, expect, it } from 'vitest';
import { parseProcStat } from '../bench/backend-cpu.js';
import { checkOutputs, formatOutputCheck, formatTable, parseExpectedHashes, perMillionRows, summarise, type RunFigures } from '../bench/report.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe("the benchmark's figures", () => {
  it('CPU per 1M rows is the median run scaled, and n/a unless every run measured it', () => {
    expect(perMillionRows([2, 4, 3], 500_000)).toBe(6);
    expect(perMillionRows([2, null, 3], 500_000)).toBeNull();
    expect(perMillionRows([2, undefined], 500_000)).toBeNull();
    expect(perMillionRows([2], null)).toBeNull();
    expect(perMillionRows([], 1)).toBeNull();
  });

  it('summarises CPU, backend CPU and the zip ratio per row, and prints them', () => {
    const run = (seconds: number, cpu: number | null, backend: number | null): RunFigures => ({
      seconds,
      rows: 2_000_000,
      bytes: 1_030,
      maxRssMiB: 120,
      cpuSeconds: cpu,
      backendCpuSeconds: backend,
    });
    const cli = summarise('cli-plain', [run(10, 20, 4), run(12, 22, 5), run(11, 21, 6)], 10, undefined, 1_000);
    expect(cli).toMatchObject({ cpuPerMillionRows: 10.5, backendCpuPerMillionRows: 2.5, zipRatio: 1.03, ratioToBaseline: 1.1 });
    // The baseline is raw deflate, not a zip; psql's row counts from the baseline's rows.
    expect(summarise('copy', [run(10, 5, 1)], undefined, undefined, 1_000).zipRatio).toBeNull();
    const psql = summarise('psql', [{ seconds: 9, rows: null, bytes: 990, maxRssMiB: null, cpuSeconds: 3 }], 10, 1_000_000, 1_000);
    expect(psql).toMatchObject({ cpuPerMillionRows: 3, backendCpuPerMillionRows: null, zipRatio: 0.99 });
    const table = formatTable(2_000_000, [cli, psql]).split('\n');
    expect(table[2]).toContain('| CPU s / 1M rows | + PG backend | vs COPY | zip vs zip -6 |');
    expect(table[4]).toMatch(/\| 120 \| 10\.50 \| 2\.50 \| 1\.10x \| 1\.030 \|$/);
    expect(table[5]).toMatch(/\| 3\.00 \| n\/a \| 0\.90x \| 0\.990 \|$/);
  });

  it('the zip rows must agree on the CSV, and with the hash expected', () => {
    const same = checkOutputs({ export: { sha256: A, csvBytes: 10 }, 'cli-plain': { sha256: A, csvBytes: 10 } }, 7, A);
    expect(same).toMatchObject({ sha256: A, csvBytes: 10, zip6Bytes: 7, problems: [] });
    expect(formatOutputCheck(same)).toBe(`CSV sha256 (export, cli-plain alike): ${A}, 10 bytes; \`zip -6\` of it: 7 bytes`);
    const differ = checkOutputs({ export: { sha256: A, csvBytes: 10 }, gcs: { sha256: B, csvBytes: 11 } }, undefined, undefined);
    expect(differ.sha256).toBeUndefined();
    expect(differ.problems).toEqual([`the zip rows' CSVs differ: export ${A} (10 bytes), gcs ${B} (11 bytes)`]);
    expect(checkOutputs({ cli: { sha256: A, csvBytes: 1 } }, undefined, B).problems).toEqual([`expected CSV sha256 ${B}, got ${A}`]);
    expect(checkOutputs({}, undefined, B).problems).toEqual([`expected CSV sha256 ${B}, but no zip row ran to hash`]);
  });

  it('--expect-csv-sha256 takes HASH for one size, MESSAGES=HASH pairs for any, and names itself when wrong', () => {
    expect([...parseExpectedHashes(A.toUpperCase(), [1_000_000])]).toEqual([[1_000_000, A]]);
    expect([...parseExpectedHashes(`100_000=${A}, 5000000=${B}`, [100_000, 5_000_000])]).toEqual([
      [100_000, A],
      [5_000_000, B],
    ]);
    expect(parseExpectedHashes(undefined, [1]).size).toBe(0);
    expect(() => parseExpectedHashes(A, [1, 2])).toThrow(/^Expected --expect-csv-sha256 as MESSAGES=HASH pairs/);
    expect(() => parseExpectedHashes(`3=${A}`, [1, 2])).toThrow(/^Expected --expect-csv-sha256 to name sizes among --messages \(1, 2\), got "3"$/);
    expect(() => parseExpectedHashes('1=abc', [1])).toThrow(/^Expected --expect-csv-sha256 to give sha256 hashes \(64 hex digits\), got "abc"$/);
    expect(() => parseExpectedHashes(' , ', [1])).toThrow(/at least one hash/);
  });

  it('reads ppid and the CPU fields of /proc/PID/stat, even with parentheses and spaces in the name', () => {
    const fields = 'S 42 1 1 0 -1 4194560 100 0 0 0 250 30 1200 340 20 0 1 0 5000 1000 100';
    expect(parseProcStat(`123 (postgres: a (b) c) ${fields}`)).toEqual({ ppid: 42, utime: 250, stime: 30, cutime: 1200, cstime: 340 });
    expect(() => parseProcStat('garbage')).toThrow(/ppid/);
  });
});
