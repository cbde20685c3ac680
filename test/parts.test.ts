import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { partFileName, PartPlanner } from '../transforms/parts.js';

/** Places chats of the given sizes and returns, per part, the rows' chats (a chat of size n as n entries). */
function plan(rowsPerFile: number, chatSizes: readonly number[]): string[][] {
  const planner = new PartPlanner(rowsPerFile);
  const parts: string[][] = [];
  chatSizes.forEach((size, chat) => {
    for (let row = 0; row < size; row++) {
      const part = planner.place(`c${chat}`, size);
      (parts[part] ??= []).push(`c${chat}`);
    }
  });
  return parts;
}

describe('PartPlanner', () => {
  it('keeps everything in one part under the limit', () => {
    expect(plan(10, [3, 3, 4])).toEqual([['c0', 'c0', 'c0', 'c1', 'c1', 'c1', 'c2', 'c2', 'c2', 'c2']]);
  });

  it('breaks only between chats', () => {
    expect(plan(5, [3, 3, 2])).toEqual([
      ['c0', 'c0', 'c0'],
      ['c1', 'c1', 'c1', 'c2', 'c2'],
    ]);
  });

  it('starts a chat larger than the limit in a new part, fills whole parts, and lets the next chat continue its last part', () => {
    expect(plan(4, [1, 9, 2, 3])).toEqual([
      ['c0'],
      ['c1', 'c1', 'c1', 'c1'],
      ['c1', 'c1', 'c1', 'c1'],
      ['c1', 'c2', 'c2'],
      ['c3', 'c3', 'c3'],
    ]);
  });

  it('never puts more than the limit in a part', () => {
    const sizes = Array.from({ length: 200 }, (_, i) => ((i * 7919) % 13) + 1);
    for (const part of plan(10, sizes)) expect(part.length).toBeLessThanOrEqual(10);
    expect(plan(10, sizes).flat()).toHaveLength(sizes.reduce((a, b) => a + b, 0));
  });

  it('places a whole chat at once exactly as row by row', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 60 }), (limit, sizes) => {
        const byRow = new PartPlanner(limit);
        const byChat = new PartPlanner(limit);
        sizes.forEach((size, chat) => {
          let last = -1;
          for (let row = 0; row < size; row++) last = byRow.place(`c${chat}`, size);
          expect(byChat.placeChat(`c${chat}`, size)).toBe(last);
        });
        // Both continue identically afterwards.
        expect(byChat.place('next', 1)).toBe(byRow.place('next', 1));
      }),
    );
  });

  it('rejects a limit below 1', () => {
    expect(() => new PartPlanner(0)).toThrow(TypeError);
  });
});

describe('partFileName', () => {
  it('has no suffix for a single part and numbered suffixes otherwise', () => {
    expect(partFileName('export', 0, false)).toBe('export.csv');
    expect(partFileName('export', 0, true)).toBe('export-part-001.csv');
    expect(partFileName('export', 11, true)).toBe('export-part-012.csv');
  });
});
