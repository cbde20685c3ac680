import fc from 'fast-check';
import { buffer } from 'node:stream/consumers';
import { to as copyTo } from 'pg-copy-streams';
import { describe, expect, it } from 'vitest';
import { parseCopyTextRow, unescapeCopyText } from '../transforms/copy-text.js';
import { useTestDatabase } from './support/database.js';

const db = useTestDatabase();

describe('parseCopyTextRow', () => {
  it('splits on TAB, reads \\N as NULL and decodes escapes', () => {
    expect(parseCopyTextRow('1\t\\N\ta\\tb\\nc\\\\d\\re\t', 4)).toEqual(['1', null, 'a\tb\nc\\d\re', '']);
  });

  it('decodes the rarer escapes PostgreSQL accepts', () => {
    expect(unescapeCopyText('\\b\\f\\v\\101\\x41\\q')).toBe('\b\f\vAAq');
  });

  it('tells a literal backslash-N text apart from NULL', () => {
    expect(parseCopyTextRow('\\\\N\t\\N', 2)).toEqual(['\\N', null]);
  });

  it('fails on a column count the query did not promise', () => {
    expect(() => parseCopyTextRow('a\tb', 3)).toThrow('COPY row has 2 columns, expected 3');
  });
});

describe('against PostgreSQL COPY TO STDOUT', () => {
  it('gives back exactly the values stored, for arbitrary text', async () => {
    // PostgreSQL text cannot hold NUL; everything else must survive.
    const text = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replaceAll('\0', ''));
    const tricky = fc.string({ unit: fc.constantFrom('\\', '\t', '\n', '\r', 'N', 'a', '\b', '\v', '\f', '"', ',', '😀') });
    const samples = fc.sample(fc.tuple(fc.oneof(text, tricky), fc.option(fc.oneof(text, tricky))), 500);
    const client = await db.pool.connect();
    try {
      await client.query('CREATE TEMP TABLE samples (id int, a text, b text)');
      for (const [index, [a, b]] of samples.entries()) {
        await client.query('INSERT INTO samples VALUES ($1, $2, $3)', [index, a, b]);
      }
      const bytes = await buffer(client.query(copyTo('COPY (SELECT a, b FROM samples ORDER BY id) TO STDOUT')));
      const rows = bytes.toString('utf8').split('\n').slice(0, -1).map((line) => parseCopyTextRow(line, 2));
      expect(rows).toEqual(samples.map(([a, b]) => [a, b]));
    } finally {
      client.release();
    }
  });
});
