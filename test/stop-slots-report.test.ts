import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatShare,
  orderStopSlotGroups,
  STOP_SLOTS_HEADERS,
  stopSlotsCsv,
  type StopSlotGroup,
} from '../jobs/stop-slots/report.js';

const withGuard = { bom: true, formulaGuard: true };

function group(slotId: string | null, dialogs: number, slotName: string | null = null, slotText: string | null = null): StopSlotGroup {
  return { slotId, slotName, slotText, dialogs };
}

describe('formatShare', () => {
  it.each([
    [1, 3, '33.33'],
    [2, 3, '66.67'],
    [1, 32, '3.13'],
    [1, 1, '100.00'],
    [1, 8, '12.50'],
    [1, 16, '6.25'],
    [1, 40000, '0.00'],
    [1, 20000, '0.01'],
    [3, 40000, '0.01'],
    [0, 7, '0.00'],
    [5, 7, '71.43'],
    [7, 7, '100.00'],
    [1, 200000, '0.00'],
    [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, '100.00'],
  ])('%i of %i gives %s', (dialogs, total, expected) => {
    expect(formatShare(dialogs, total)).toBe(expected);
  });

  it.each([
    [1, 0],
    [0, 0],
    [-1, 3],
    [4, 3],
    [1.5, 3],
    [1, 2.5],
    [Number.NaN, 3],
    [1, Number.POSITIVE_INFINITY],
    [1, 2 ** 60],
  ])('rejects %d of %d with a TypeError', (dialogs, total) => {
    expect(() => formatShare(dialogs, total)).toThrow(TypeError);
  });

  it('is within 0.005 of the exact share and rounds ties up', () => {
    const counts = fc
      .tuple(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.double({ min: 0, max: 1, noNaN: true }))
      .map(([total, fraction]) => [Math.min(total, Math.floor(total * fraction)), total] as const);
    fc.assert(
      fc.property(fc.oneof(counts, fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 400, max: 40000 }))), ([dialogs, total]) => {
        const share = formatShare(dialogs, total);
        expect(share).toMatch(/^(0|[1-9][0-9]*)\.[0-9]{2}$/);
        // With h the share in hundredths of a percent and q = 10000 * dialogs / total exact,
        // half-up rounding means h - 1/2 <= q < h + 1/2; multiplied by 2 * total it is all integers.
        const h = BigInt(share.replace('.', ''));
        const twiceScaled = 2n * 10_000n * BigInt(dialogs);
        const t = BigInt(total);
        expect((2n * h - 1n) * t <= twiceScaled).toBe(true);
        expect(twiceScaled < (2n * h + 1n) * t).toBe(true);
      }),
    );
  });
});

describe('orderStopSlotGroups', () => {
  it('puts most dialogs first, ties by numeric slot id, the no-slot row after its ties', () => {
    const groups = [group('100', 2), group(null, 2), group('10', 2), group('9', 2), group('7', 5), group(null, 1), group('3', 1)];
    expect(orderStopSlotGroups(groups).map((g) => [g.slotId, g.dialogs])).toEqual([
      ['7', 5],
      ['9', 2],
      ['10', 2],
      ['100', 2],
      [null, 2],
      ['3', 1],
      [null, 1],
    ]);
  });

  it('puts the no-slot row first when it has the most dialogs', () => {
    expect(orderStopSlotGroups([group('1', 1), group(null, 3)]).map((g) => g.slotId)).toEqual([null, '1']);
  });

  it('compares ids beyond 2^53 exactly', () => {
    const ids = ['9007199254740993', '9007199254740992', '18446744073709551615', '9223372036854775807'];
    expect(orderStopSlotGroups(ids.map((id) => group(id, 1))).map((g) => g.slotId)).toEqual([
      '9007199254740992',
      '9007199254740993',
      '9223372036854775807',
      '18446744073709551615',
    ]);
  });

  it('leaves its input alone', () => {
    const groups = [group('2', 1), group('1', 1)];
    orderStopSlotGroups(groups);
    expect(groups.map((g) => g.slotId)).toEqual(['2', '1']);
  });
});

describe('stopSlotsCsv', () => {
  const groups = [
    group('10', 1, '=cmd', null),
    group(null, 1),
    group('9', 2, 'welcome', 'Hola\r\n\r\nElige, "una"\ropción'),
  ];

  it('writes BOM, header, ordered records with CRLF ends, quoted multi-paragraph text, guarded formulas', () => {
    const { text, rows } = stopSlotsCsv(groups, withGuard);
    expect(rows).toBe(3);
    expect(text).toBe(
      '\uFEFFSlot ID,Slot Name,Slot Text,Dialogs,Share\r\n' +
        '9,welcome,"Hola\n\nElige, ""una""\nopción",2,50.00\r\n' +
        "10,'=cmd,,1,25.00\r\n" +
        ',(none),,1,25.00\r\n',
    );
    const records = parse(text, { bom: true }) as string[][];
    expect(records[0]).toEqual([...STOP_SLOTS_HEADERS]);
    expect(records.slice(1)).toEqual([
      ['9', 'welcome', 'Hola\n\nElige, "una"\nopción', '2', '50.00'],
      ['10', "'=cmd", '', '1', '25.00'],
      ['', '(none)', '', '1', '25.00'],
    ]);
  });

  it('drops the BOM and the formula guard when asked', () => {
    const { text } = stopSlotsCsv(groups, { bom: false, formulaGuard: false });
    expect(text.startsWith('Slot ID,')).toBe(true);
    expect(text).toContain('\r\n10,=cmd,,1,25.00\r\n');
    // Line breaks are normalised whatever the guard says.
    expect(text).not.toMatch(/\r(?!\n)/);
  });

  it('leaves name and text empty for a slot of another bot', () => {
    const { text } = stopSlotsCsv([group('60', 1, null, null)], withGuard);
    expect(text).toBe('\uFEFFSlot ID,Slot Name,Slot Text,Dialogs,Share\r\n60,,,1,100.00\r\n');
  });

  it('writes the header only when there are no groups', () => {
    expect(stopSlotsCsv([], withGuard)).toEqual({ text: '\uFEFFSlot ID,Slot Name,Slot Text,Dialogs,Share\r\n', rows: 0 });
    expect(stopSlotsCsv([], { bom: false, formulaGuard: true }).text).toBe('Slot ID,Slot Name,Slot Text,Dialogs,Share\r\n');
  });

  it('computes shares from the groups total, rounding half up', () => {
    const thirds = stopSlotsCsv([group('1', 1), group('2', 2)], withGuard);
    expect(thirds.text).toContain('\r\n2,,,2,66.67\r\n1,,,1,33.33\r\n');
    const many = stopSlotsCsv([group('1', 31), group('2', 1)], withGuard);
    expect(many.text).toContain('\r\n1,,,31,96.88\r\n2,,,1,3.13\r\n');
  });
});
