import { describe, expect, it } from 'vitest';
import { planBackfillUnits, resolveShard, shardUnits, splitMonths } from '../jobs/backfill/plan.js';

describe('splitMonths', () => {
  it('splits whole months at the 1st', () => {
    expect(splitMonths('2026-09-01', '2026-12-01')).toEqual([
      { month: '2026-09', from: '2026-09-01', to: '2026-10-01' },
      { month: '2026-10', from: '2026-10-01', to: '2026-11-01' },
      { month: '2026-11', from: '2026-11-01', to: '2026-12-01' },
    ]);
  });

  it('keeps a range starting and ending mid-month partial, across a year end', () => {
    expect(splitMonths('2026-11-15', '2027-01-10')).toEqual([
      { month: '2026-11', from: '2026-11-15', to: '2026-12-01' },
      { month: '2026-12', from: '2026-12-01', to: '2027-01-01' },
      { month: '2027-01', from: '2027-01-01', to: '2027-01-10' },
    ]);
  });

  it('gives one unit for a range inside one month', () => {
    expect(splitMonths('2026-02-03', '2026-02-04')).toEqual([{ month: '2026-02', from: '2026-02-03', to: '2026-02-04' }]);
  });

  it('rejects an empty range naming --from', () => {
    expect(() => splitMonths('2026-02-03', '2026-02-03')).toThrow(/--from: .*not before/);
  });
});

describe('planBackfillUnits', () => {
  it('sorts merchants numerically, then months, deduplicated, with ids derived from the unit', () => {
    const units = planBackfillUnits(['10', '9', '10'], '2026-09-20', '2026-10-05');
    expect(units.map((unit) => [unit.requestId, unit.from, unit.to])).toEqual([
      ['backfill-m9-2026-09', '2026-09-20', '2026-10-01'],
      ['backfill-m9-2026-10', '2026-10-01', '2026-10-05'],
      ['backfill-m10-2026-09', '2026-09-20', '2026-10-01'],
      ['backfill-m10-2026-10', '2026-10-01', '2026-10-05'],
    ]);
  });

  it('rejects a bad merchant id naming --merchant', () => {
    expect(() => planBackfillUnits(['x'], '2026-09-01', '2026-10-01')).toThrow(/--merchant: expected a positive whole number/);
  });
});

describe('sharding', () => {
  it('is disjoint and covering for every task count', () => {
    const units = planBackfillUnits(['1', '2', '3', '4', '5', '6', '7'], '2026-01-15', '2026-06-02');
    for (let count = 1; count <= 9; count += 1) {
      const shares = Array.from({ length: count }, (_, index) => shardUnits(units, { index, count }));
      const all = shares.flat().map((unit) => unit.requestId);
      expect(new Set(all).size).toBe(all.length);
      expect([...all].sort()).toEqual(units.map((unit) => unit.requestId).sort());
      // Balanced: shares differ by at most one unit.
      const sizes = shares.map((share) => share.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  it('takes flags over the Cloud Run variables, and defaults to task 0 of 1', () => {
    expect(resolveShard({}, {})).toEqual({ index: 0, count: 1 });
    expect(resolveShard({}, { CLOUD_RUN_TASK_INDEX: '2', CLOUD_RUN_TASK_COUNT: '3' })).toEqual({ index: 2, count: 3 });
    expect(resolveShard({ taskIndex: '1', taskCount: '4' }, { CLOUD_RUN_TASK_INDEX: '2', CLOUD_RUN_TASK_COUNT: '3' })).toEqual({ index: 1, count: 4 });
  });

  it.each([
    [{ taskIndex: '3', taskCount: '3' }, {}, /--task-index: expected a task index below the task count 3/],
    [{ taskIndex: '-1', taskCount: '3' }, {}, /--task-index: expected a whole number/],
    [{ taskCount: '0' }, {}, /--task-count: expected at least 1/],
    [{ taskCount: '2.5' }, {}, /--task-count: expected a whole number/],
    [{}, { CLOUD_RUN_TASK_INDEX: '5', CLOUD_RUN_TASK_COUNT: '2' }, /CLOUD_RUN_TASK_INDEX: expected a task index below/],
    [{}, { CLOUD_RUN_TASK_COUNT: 'many' }, /CLOUD_RUN_TASK_COUNT: expected a whole number/],
  ])('rejects %j %j naming the flag or variable', (flags, env, message) => {
    expect(() => resolveShard(flags, env)).toThrow(message);
  });
});
