import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatCell,
  formatHeader,
  formatRecord,
  isPlainPhoneNumber,
  normalizeLineBreaks,
  quoteField,
  startsLikeFormula,
} from '../transforms/csv.js';

const guarded = { formulaGuard: true };
const unguarded = { formulaGuard: false };

describe('quoteField', () => {
  it.each([
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['hea"d"er', '"hea""d""er"'],
    ['line\nbreak', '"line\nbreak"'],
    ['carriage\rreturn', '"carriage\rreturn"'],
    [' leading', '" leading"'],
    ['trailing ', '"trailing "'],
    ['in side', 'in side'],
    ['', ''],
  ])('%j gives %j', (value, expected) => {
    expect(quoteField(value)).toBe(expected);
  });
});

describe('formatCell', () => {
  it('turns CRLF and lone CR inside text into LF', () => {
    expect(formatCell('a\r\nb\rc\nd', 'text', guarded)).toBe('"a\nb\nc\nd"');
    expect(normalizeLineBreaks('\r\r\n')).toBe('\n\n');
  });

  it.each(['=SUM(A1)', '+1', '-1', '@cmd', '\tx', '\rx', '\nx'])('guards free text starting like a formula: %j', (value) => {
    const cell = formatCell(value, 'text', guarded);
    const [[parsed]] = parse(`${cell}\r\n`, { relaxQuotes: false }) as [[string]];
    expect(parsed).toBe(`'${normalizeLineBreaks(value)}`);
  });

  it('leaves text alone when the guard is off', () => {
    expect(formatCell('=1+2', 'text', unguarded)).toBe('=1+2');
  });

  it('leaves numbers and generated values unguarded', () => {
    expect(formatCell('-5', 'numeric', guarded)).toBe('-5');
    expect(formatCell('-00:00:01:00', 'generated', guarded)).toBe('-00:00:01:00');
  });

  it.each(['+57 300 123 4567', '601 555-0100', '3001234567', '+1 (555) 010-0000', '7'])('leaves phone number %j alone', (value) => {
    expect(isPlainPhoneNumber(value)).toBe(true);
    expect(formatCell(value, 'phone', guarded)).toBe(value);
  });

  it.each([
    ['=1+2', "'=1+2"],
    ['+57 call me', "'+57 call me"],
    ['-', "'-"],
    ['+', "'+"],
    ['call me, later', '"call me, later"'],
    ['(601) 555-0100', '(601) 555-0100'],
  ])('treats phone value %j like free text', (value, expected) => {
    expect(isPlainPhoneNumber(value)).toBe(false);
    expect(formatCell(value, 'phone', guarded)).toBe(expected);
  });

  it('writes NULL and the empty string as an empty field', () => {
    expect(formatCell(null, 'text', guarded)).toBe('');
    expect(formatCell('', 'phone', guarded)).toBe('');
  });

  it('quotes a guarded value that ends with a space', () => {
    expect(formatCell('=a ', 'text', guarded)).toBe(`"'=a "`);
  });
});

describe('records', () => {
  it('end with CRLF, the header too', () => {
    expect(formatRecord(['a', 'b'])).toBe('a,b\r\n');
    expect(formatHeader(['Chat ID', 'a,b'])).toBe('Chat ID,"a,b"\r\n');
  });
});

describe('round trip through an independent parser (csv-parse)', () => {
  const anyText = fc.oneof(
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: fc.constantFrom('a', ' ', ',', '"', '\r', '\n', '\t', '=', '+', '-', '@', 'é', '😀', '中') }),
  );

  it('every record parses back to its cells (text, guard off: values survive up to line-break normalisation)', () => {
    fc.assert(
      fc.property(fc.array(anyText, { minLength: 1, maxLength: 8 }), (values) => {
        const text = values.map((value) => formatCell(value, 'text', unguarded));
        const records = parse(formatRecord(text) + formatRecord(text), { bom: false, relaxColumnCount: false }) as string[][];
        const expected = values.map(normalizeLineBreaks);
        expect(records).toEqual([expected, expected]);
      }),
      { numRuns: 2000 },
    );
  });

  it('with the guard on, a value parses back with a leading quote exactly when it starts like a formula', () => {
    fc.assert(
      fc.property(anyText, (value) => {
        const [[parsed]] = parse(formatRecord([formatCell(value, 'text', guarded)]), {}) as [[string]];
        const normalized = normalizeLineBreaks(value);
        expect(parsed).toBe(startsLikeFormula(normalized) ? `'${normalized}` : normalized);
        expect(startsLikeFormula(parsed ?? '')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('a written cell never holds a CR and the record ends with exactly one CRLF', () => {
    fc.assert(
      fc.property(fc.array(anyText, { minLength: 1, maxLength: 5 }), (values) => {
        const record = formatRecord(values.map((value) => formatCell(value, 'text', guarded)));
        expect(record.endsWith('\r\n')).toBe(true);
        expect(record.slice(0, -2)).not.toContain('\r');
      }),
    );
  });
});
