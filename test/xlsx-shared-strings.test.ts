import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createZipStream } from '../sinks/zip.js';
import { ByteOutput } from '../transforms/byte-output.js';
import type { CopyTextRow } from '../transforms/copy-text.js';
import { createXlsxSheetsStage } from '../transforms/xlsx-sheets.js';
import { XLSX_MAX_CELL_CHARS, XlsxRowWriter, XlsxSharedStrings, type XlsxSharedStringsLimits } from '../transforms/xlsx.js';
import { temporaryDirectory } from './support/export.js';
import { readWithExceljs, readWithOpenpyxl, type TypedCell } from './support/xlsx-readers.js';

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
const FLAGS_NONE = 0;

function tableXml(table: XlsxSharedStrings): string {
  return Buffer.concat(table.part()).toString('utf8');
}

describe('the shared-strings table', () => {
  it('gives equal bytes one index, in order of first use, and writes each string once', () => {
    const table = new XlsxSharedStrings();
    const a = utf8('xwhatsappx');
    expect(table.indexOf(a, 1, 9, FLAGS_NONE)).toBe(0);
    expect(table.indexOf(utf8('CLOSED'), 0, 6, FLAGS_NONE)).toBe(1);
    expect(table.indexOf(utf8('whatsapp'), 0, 8, FLAGS_NONE)).toBe(0);
    expect(table.size).toBe(2);
    expect(tableXml(table)).toBe(
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" uniqueCount="2"><si><t>whatsapp</t></si><si><t>CLOSED</t></si></sst>',
    );
  });

  it('tells texts apart by their bytes (accents, case, white space), and escapes them as inline cells are', () => {
    const table = new XlsxSharedStrings();
    const texts = ['María', 'Maria', 'maría', ' María', 'a & b <c>', 'tab\tand\u0001', '_x0041_'];
    const indexes = texts.map((text) => {
      const bytes = utf8(text);
      // 0xff: the caller's scan found everything XML may need escaped (the slow path runs).
      return table.indexOf(bytes, 0, bytes.length, 0xff);
    });
    expect(indexes).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const xml = tableXml(table);
    expect(xml).toContain('<si><t xml:space="preserve"> María</t></si>');
    expect(xml).toContain('<si><t>a &amp; b &lt;c&gt;</t></si>');
    expect(xml).toContain('<si><t>tab\tand_x0001_</t></si>');
    expect(xml).toContain('<si><t>_x005F_x0041_</t></si>');
  });

  it('stays within its bounds: count, bytes, and length of a string; then new strings are not shared', () => {
    const byCount = new XlsxSharedStrings({ maxStrings: 2 });
    expect(['a', 'b', 'c'].map((text) => byCount.indexOf(utf8(text), 0, 1, FLAGS_NONE))).toEqual([0, 1, -1]);
    expect(byCount.indexOf(utf8('a'), 0, 1, FLAGS_NONE)).toBe(0);

    const byBytes = new XlsxSharedStrings({ maxBytes: 80 });
    const ten = utf8('0123456789');
    // Room is judged by the worst case, 7 bytes of escape per byte plus the tags: 72 of 80 fits,
    // then 21 held + 72 does not.
    expect(byBytes.indexOf(ten, 0, 5, FLAGS_NONE)).toBe(0);
    expect(byBytes.indexOf(ten, 5, 10, FLAGS_NONE)).toBe(-1);
    expect(Buffer.concat(byBytes.part()).length).toBeLessThan(200);

    const byLength = new XlsxSharedStrings({ maxStringBytes: 4 });
    expect(byLength.indexOf(ten, 0, 4, FLAGS_NONE)).toBe(0);
    expect(byLength.indexOf(ten, 0, 5, FLAGS_NONE)).toBe(-1);
    expect(byLength.indexOf(ten, 0, 0, FLAGS_NONE)).toBe(-1);
  });

  it('gives the indexes a first-come map of the texts would, over many texts with repeats and near misses', () => {
    // The table hashes bytes; this is the plain model it must agree with, collisions and growth included.
    const maxStrings = 20_000;
    const table = new XlsxSharedStrings({ maxStrings, maxBytes: 64 * 1024 * 1024 });
    const model = new Map<string, number>();
    let seed = 7;
    const random = (limit: number): number => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed % limit;
    };
    const alphabet = ['a', 'b', 'é', ' ', '0', '\u00ff', 'ß'];
    for (let i = 0; i < 60_000; i++) {
      let text = `t${random(30_000)}`;
      // Texts that differ only in their last byte or their length, and repeats of earlier ones.
      for (let n = random(4); n > 0; n--) text += alphabet[random(alphabet.length)]!;
      const bytes = utf8(`<${text}>`);
      const expected = model.get(text) ?? (model.size < maxStrings ? model.size : -1);
      if (expected === model.size) model.set(text, expected);
      expect(table.indexOf(bytes, 1, bytes.length - 1, FLAGS_NONE)).toBe(expected);
    }
    expect(table.size).toBe(maxStrings);
    const xml = tableXml(table);
    const written = [...xml.matchAll(/<si><t(?: xml:space="preserve")?>(.*?)<\/t><\/si>/g)].map((match) => match[1]);
    expect(written).toEqual([...model.keys()]);
    expect(table.size).toBe(0);
  });

  it('refuses limits that are no whole number from 1, naming the limit', () => {
    expect(() => new XlsxSharedStrings({ maxStrings: 0 })).toThrow(/`maxStrings`.*got 0/);
    expect(() => new XlsxSharedStrings({ maxBytes: 1.5 })).toThrow(/`maxBytes`.*got 1.5/);
    expect(() => new XlsxSharedStrings({ maxStringBytes: Number.NaN })).toThrow(/`maxStringBytes`/);
  });
});

function rowText(writer: XlsxRowWriter, write: () => void): string {
  const out = writer.out;
  out.take();
  write();
  return Buffer.concat(out.take()).toString('utf8');
}

describe('the row writer', () => {
  it('writes a shared text as a reference, wrapped when it holds a line break, inline when there is no table', () => {
    const writer = new XlsxRowWriter(new ByteOutput(1024), 3);
    const name = utf8('Ana\nMaría');
    writer.startRow(7);
    expect(rowText(writer, () => writer.sharedText(1, name, 0, name.length))).toBe('<c r="B7" s="2" t="inlineStr"><is><t>Ana\nMaría</t></is></c>');
    writer.sharedStrings = new XlsxSharedStrings();
    expect(rowText(writer, () => writer.sharedText(1, name, 0, name.length))).toBe('<c r="B7" s="2" t="s"><v>0</v></c>');
    expect(rowText(writer, () => writer.sharedText(2, utf8('x'), 0, 1))).toBe('<c r="C7" t="s"><v>1</v></c>');
    expect(rowText(writer, () => writer.sharedText(2, utf8('x'), 0, 0))).toBe('');
  });

  it("repeats a kept cell with the new row's reference while the key stays, and never across a sheet's first row", () => {
    const writer = new XlsxRowWriter(new ByteOutput(1024), 2);
    const key = utf8('chat-1');
    const text = utf8('Ana & Bob');
    writer.startRow(2);
    expect(writer.sameKey(key, 0, key.length)).toBe(false);
    expect(writer.repeatCell(0)).toBe(false);
    const kept = rowText(writer, () => {
      const mark = writer.cellMark();
      writer.text(0, text, 0, text.length);
      writer.keepCell(0, mark);
      const empty = writer.cellMark();
      writer.keepCell(1, empty);
    });
    expect(kept).toBe('<c r="A2" t="inlineStr"><is><t>Ana &amp; Bob</t></is></c>');
    writer.startRow(3);
    expect(writer.sameKey(key, 0, key.length)).toBe(true);
    expect(rowText(writer, () => expect(writer.repeatCell(0)).toBe(true))).toBe('<c r="A3" t="inlineStr"><is><t>Ana &amp; Bob</t></is></c>');
    // A kept empty cell repeats as no cell.
    expect(rowText(writer, () => expect(writer.repeatCell(1)).toBe(true))).toBe('');
    writer.startRow(1);
    writer.startRow(2);
    expect(writer.sameKey(key, 0, key.length)).toBe(false);
  });

  it('does not keep a cell over the byte bound, and counts a repeated cut cell each time it is written', () => {
    const writer = new XlsxRowWriter(new ByteOutput(1024), 1);
    const long = Buffer.alloc(XLSX_MAX_CELL_CHARS + 10, 'a');
    writer.startRow(2);
    let mark = writer.cellMark();
    writer.text(0, long, 0, long.length);
    writer.keepCell(0, mark);
    expect(writer.repeatCell(0)).toBe(false);
    mark = writer.cellMark();
    writer.text(0, long, 0, long.length);
    writer.keepCell(0, mark, 1 << 20);
    expect(writer.truncatedCells).toBe(2);
    writer.startRow(3);
    expect(writer.repeatCell(0)).toBe(true);
    expect(writer.truncatedCells).toBe(3);
  });
});

/** COPY text rows `group\ttext` in, a workbook out through the stage: with `limits` for its table. */
async function workbookOf(rows: readonly (readonly [string, string])[], limits: XlsxSharedStringsLimits | false): Promise<string> {
  const writeRow = (w: XlsxRowWriter, row: CopyTextRow, rowNumber: number): void => {
    w.startRow(rowNumber);
    const repeat = w.sameKey(row.src, row.starts[0]!, row.ends[0]!);
    if (!repeat || !w.repeatCell(0)) {
      const mark = w.cellMark();
      w.sharedText(0, row.src, row.starts[0]!, row.ends[0]!);
      w.keepCell(0, mark);
    }
    w.sharedText(1, row.src, row.starts[1]!, row.ends[1]!);
    w.endRow();
  };
  const stage = createXlsxSheetsStage({
    columns: 2,
    groupColumn: 0,
    groupSize: () => 1,
    rowsPerFile: 1_000_000,
    headers: ['Group', 'Text'],
    sheetNames: ['Sheet'],
    writeRow,
    sharedStrings: limits,
    chunkSize: 256,
  });
  const path = join(await temporaryDirectory(), 'shared.xlsx');
  const copyText = rows.map(([group, text]) => `${group}\t${text}\n`).join('');
  await pipeline(Readable.from([Buffer.from(copyText, 'utf8')]), stage, createZipStream({ level: 1 }), createWriteStream(path));
  return path;
}

describe('a workbook with a shared-strings table', () => {
  const rows: [string, string][] = Array.from({ length: 60 }, (_, index) => [
    `group ${Math.floor(index / 4)}`,
    [`status ${index % 3}`, `unique ${index}`, 'Ana María', ' spaced ', 'a & b'][index % 5]!,
  ]);
  const expected: TypedCell[][] = [
    [
      { type: 'string', text: 'Group' },
      { type: 'string', text: 'Text' },
    ],
    ...rows.map(([group, text]): TypedCell[] => [
      { type: 'string', text: group },
      { type: 'string', text },
    ]),
  ];

  for (const [label, limits] of [
    ['no table', false],
    ['a table that fills after 5 strings', { maxStrings: 5 }],
    ['a table of 200 bytes', { maxBytes: 200 }],
    ['the default table', {}],
  ] as const) {
    it(`reads back as the same cells with ${label} (exceljs, openpyxl)`, async () => {
      const path = await workbookOf(rows, limits);
      for (const read of [readWithExceljs, readWithOpenpyxl]) {
        const [sheet, ...others] = await read(path);
        expect(others).toEqual([]);
        expect(sheet!.rows).toEqual(expected);
      }
    });
  }
});
