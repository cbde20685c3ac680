import fc from 'fast-check';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import type { ZipEntryChunk } from '../sinks/zip.js';
import { ByteOutput } from '../transforms/byte-output.js';
import {
  appendConversationRecord,
  chatIdOf,
  chatRowsOf,
  chatRowsOfCopyRow,
  CONVERSATION_CHAT_ID_COLUMN,
  CONVERSATION_HEADER_RECORD,
  CONVERSATION_SOURCE_COLUMNS,
  formatConversationRecord,
} from '../transforms/conversation-row.js';
import { CopyTextRow, parseCopyTextRow, unescapeCopyBytes, unescapeCopyText } from '../transforms/copy-text.js';
import { createCsvPartsStage, type CsvPartsOptions } from '../transforms/csv-parts.js';
import { appendCsvField, formatCell, isPlainPhoneNumber, isPlainPhoneNumberBytes, UTF8_BOM, type CellKind, type CsvCellOptions } from '../transforms/csv.js';
import { appendDurationBytes, formatDurationText } from '../transforms/duration.js';
import { PartPlanner, partFileName } from '../transforms/parts.js';
import { appendTimestampBytes, formatTimestamp } from '../transforms/timestamp.js';

// The byte path (transforms/csv-parts.ts and the append* functions) must give exactly the bytes of
// the string path (parseCopyTextRow, formatCell, formatConversationRecord), which the other tests
// pin down cell by cell. These properties are what keeps the two copies of the rules from drifting.

const guardings: CsvCellOptions[] = [{ formulaGuard: true }, { formulaGuard: false }];
const kinds: CellKind[] = ['numeric', 'generated', 'text', 'phone'];

/** Text with everything the rules look at: quotes, commas, breaks, spaces, formula starts, wide characters. */
const trickyText = fc.string({
  unit: fc.constantFrom('a', 'Z', '0', '7', ' ', ',', '"', '\r', '\n', '\t', '=', '+', '-', '@', "'", '(', ')', '.', '\\', 'N', 'é', '中', '😀', '\u{1F1E8}\u{1F1F4}', '\uFEFF', '\0'),
  maxLength: 12,
});
const phoneLike = fc
  .tuple(fc.constantFrom('', '+', '-', ' '), fc.string({ unit: fc.constantFrom('0', '5', '9', ' ', '(', ')', '.', '-', 'x'), maxLength: 10 }), fc.constantFrom('', '1', ' ', ')'))
  .map(([a, b, c]) => a + b + c);
const anyValue = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 16 }), trickyText, phoneLike);

function fieldBytes(value: string, kind: CellKind, options: CsvCellOptions): Buffer {
  const out = new ByteOutput(4);
  const src = Buffer.from(`x${value}y`);
  appendCsvField(out, src, 1, src.length - 1, kind, options);
  return Buffer.concat(out.take());
}

describe('ByteOutput', () => {
  it('hands out pieces in order that later writes never change, shared values as views of their input', () => {
    const out = new ByteOutput(4);
    const input = Buffer.from('0123456789');
    out.bytes(input, 0, 2);
    out.share(input, 2, 8);
    out.string('é!');
    expect(out.size).toBe(11);
    const pieces = out.take();
    expect(Buffer.concat(pieces).toString()).toBe('01234567é!');
    expect(pieces[1]!.buffer).toBe(input.buffer);
    out.bytes(Buffer.from('x'.repeat(100)), 0, 100); // grows past its capacity
    out.byte(0x79);
    const next = out.take();
    expect(Buffer.concat(pieces).toString()).toBe('01234567é!');
    expect(Buffer.concat(next).toString()).toBe('x'.repeat(100) + 'y');
    expect(out.size).toBe(0);
    expect(out.take()).toEqual([]);
  });

  it('refuses a capacity that is not a whole number from 1', () => {
    expect(() => new ByteOutput(0)).toThrow(/`capacity`.*got 0/);
  });
});

describe('appendCsvField', () => {
  it('gives the bytes of formatCell for every kind and guard setting', () => {
    fc.assert(
      fc.property(anyValue, fc.constantFrom(...kinds), fc.constantFrom(...guardings), (value, kind, options) => {
        expect(fieldBytes(value, kind, options).toString('utf8')).toBe(formatCell(value, kind, options));
      }),
      { numRuns: 5000 },
    );
  });

  it.each([
    ['=a ', 'text', "\"'=a \""],
    ['\r\n=x', 'text', "\"'\n=x\""],
    ['a\r\r\nb', 'text', '"a\n\nb"'],
    ['a\rb', 'numeric', '"a\rb"'],
    [' +57 1', 'phone', '" +57 1"'],
    ['+57 (1) 2', 'phone', '+57 (1) 2'],
    ['say "hi"', 'text', '"say ""hi"""'],
  ] as const)('%j as %s gives %j', (value, kind, expected) => {
    expect(fieldBytes(value, kind, { formulaGuard: true }).toString('utf8')).toBe(expected);
    expect(formatCell(value, kind, { formulaGuard: true })).toBe(expected);
  });

  it('grows its output for one value larger than the buffer', () => {
    const value = '"'.repeat(100_000);
    expect(fieldBytes(value, 'text', { formulaGuard: true }).toString('utf8')).toBe(formatCell(value, 'text', { formulaGuard: true }));
  });

  it('agrees with isPlainPhoneNumber', () => {
    fc.assert(
      fc.property(fc.oneof(phoneLike, trickyText), (value) => {
        const bytes = Buffer.from(value);
        expect(isPlainPhoneNumberBytes(bytes, 0, bytes.length)).toBe(isPlainPhoneNumber(value));
      }),
      { numRuns: 3000 },
    );
  });
});

/** COPY text escapes as PostgreSQL writes them, and the rarer ones it reads (octal, hex, any character). */
const copyUnit = fc.constantFrom(
  'a', ' ', ',', '"', '=', 'N', 'x', '7', 'é', '😀', '\r', '\\\\', '\\N', '\\n', '\\r', '\\t', '\\b', '\\f', '\\v',
  '\\0', '\\12', '\\101', '\\777', '\\8', '\\x', '\\x4', '\\x4F', '\\xg', '\\q', '\\é', '\\😀', '\\"', '\\',
);
const copyValue = fc.string({ unit: copyUnit, maxLength: 10 });

describe('unescapeCopyBytes', () => {
  it('gives the UTF-8 of unescapeCopyText', () => {
    fc.assert(
      fc.property(copyValue, (raw) => {
        const src = Buffer.from(raw);
        const dst = Buffer.alloc(src.length);
        const end = unescapeCopyBytes(src, 0, src.length, dst, 0);
        expect(dst.subarray(0, end).toString('utf8')).toBe(unescapeCopyText(raw));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('CopyTextRow', () => {
  it('reads the values parseCopyTextRow reads', () => {
    fc.assert(
      fc.property(fc.array(copyValue, { minLength: 1, maxLength: 6 }), (values) => {
        const line = values.join('\t');
        const row = new CopyTextRow(values.length).parse(Buffer.from(`\n${line}\n`), 1, Buffer.byteLength(line) + 1);
        expect(values.map((_, c) => row.text(c))).toEqual(parseCopyTextRow(line, values.length));
      }),
      { numRuns: 3000 },
    );
  });

  it('fails on a column count the query did not promise, as parseCopyTextRow', () => {
    expect(() => new CopyTextRow(3).parse(Buffer.from('a\tb'), 0, 3)).toThrow('COPY row has 2 columns, expected 3');
    expect(() => new CopyTextRow(2).parse(Buffer.from('a\tb\tc\td'), 0, 7)).toThrow('COPY row has 4 columns, expected 2');
    expect(() => parseCopyTextRow('a\tb\tc\td', 2)).toThrow('COPY row has 4 columns, expected 2');
  });
});

const TIMESTAMPS = {
  common: ['2026-09-01 07:00:00.902917-05', '2026-09-01 07:00:00-05', '2026-10-31 23:59:59.999999+05:30', '2026-09-01 07:00:00+05:45:10'],
  rare: ['12026-01-01 00:00:00-05', '0044-03-15 12:00:00-04:56:02 BC', '2026-09-01 07:00:00.5-05 BC', '2026-09-01 07:00:00'],
  // Never from PostgreSQL: both paths must fail alike (or, for the first two, agree on the cut).
  bad: ['2026-09-01 07:00:0é.5-05', '2026-09-01 ٠7:00:00.5-05', 'yesterday', '', '2026-09-01 07:00:00 -05'],
};
const DURATIONS = {
  rare: ['0', '-0', '007', '59', '86399', '8640000', '999999999999999', '1234567890123456', '+5', ' 5', '1e3', '0x10'],
  bad: ['', '-', '1.5', 'abc', '9007199254740993'],
};
/** Mostly what PostgreSQL sends; rarely what makes the export fail, so that most runs export. */
const timestampText = fc.oneof(
  { weight: 160, arbitrary: fc.constantFrom(...TIMESTAMPS.common) },
  { weight: 40, arbitrary: fc.constantFrom(...TIMESTAMPS.rare) },
  { weight: 1, arbitrary: fc.constantFrom(...TIMESTAMPS.bad) },
);
const durationText = fc.oneof(
  { weight: 80, arbitrary: fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }).map(String) },
  { weight: 20, arbitrary: fc.constantFrom(...DURATIONS.rare) },
  { weight: 1, arbitrary: fc.constantFrom(...DURATIONS.bad) },
);

describe('appendTimestampBytes and appendDurationBytes', () => {
  it('write what formatTimestamp writes, or leave it to formatTimestamp', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TIMESTAMPS.common, ...TIMESTAMPS.rare, ...TIMESTAMPS.bad), (text) => {
        const out = new ByteOutput(8);
        const bytes = Buffer.from(text);
        if (appendTimestampBytes(out, bytes, 0, bytes.length)) expect(Buffer.concat(out.take()).toString('utf8')).toBe(formatTimestamp(text));
        else expect(out.pos).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it('write what formatDurationText writes, or leave it to formatDurationText', () => {
    fc.assert(
      fc.property(fc.oneof(durationText, fc.constantFrom(...DURATIONS.rare, ...DURATIONS.bad)), (text) => {
        const out = new ByteOutput(8);
        const bytes = Buffer.from(text);
        if (appendDurationBytes(out, bytes, 0, bytes.length)) expect(Buffer.concat(out.take()).toString('utf8')).toBe(formatDurationText(text));
        else expect(out.pos).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The whole stage against the string path, on random conversation rows cut at random places.

/** A value as PostgreSQL's COPY TO writes it. */
function copyEscape(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\b\f\n\r\t\v]/g, (c) => ({ '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' })[c]!);
}

/** The same text with its first character as an octal escape: other raw bytes, the same value. */
function octalFirst(value: string): string {
  const code = value.codePointAt(0);
  if (code === undefined || code > 0o777 || value.startsWith('\\')) return value;
  return `\\${code.toString(8).padStart(3, '0')}${copyEscape(value.slice(1))}`;
}

const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 20 }), trickyText, phoneLike).map((s) => s.replaceAll('\0', ''));
/** A COPY field: mostly PostgreSQL's own escaping, sometimes the rare escapes it also reads, or NULL. */
const field = (value: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: value.map(copyEscape) },
    { weight: 1, arbitrary: value.map(octalFirst) },
    { weight: 1, arbitrary: copyValue },
    { weight: 1, arbitrary: fc.constant('\\N') },
  );

const column = Object.fromEntries(CONVERSATION_SOURCE_COLUMNS.map((name, index) => [name, index])) as Record<
  (typeof CONVERSATION_SOURCE_COLUMNS)[number],
  number
>;
const TIMESTAMP_COLUMNS = new Set([column.chat_created_at, column.message_created_at, column.opened_at, column.picked_up_at, column.closed_at]);

/** One message row without its chat id and count, which the chat gives. */
const messageRow = fc.array(field(text), { minLength: CONVERSATION_SOURCE_COLUMNS.length, maxLength: CONVERSATION_SOURCE_COLUMNS.length }).chain((values) =>
  fc
    .record({
      sender: fc.oneof(fc.constantFrom('contact', 'agent', 'bot', '\\contact', 'c\\ontact', '\\N'), field(text)),
      type: fc.oneof(fc.constantFrom('text', 'image', 'location', 't\\ext', '\\N'), field(text)),
      timestamps: fc.array(
        fc.oneof(
          { weight: 12, arbitrary: timestampText.map(copyEscape) },
          { weight: 1, arbitrary: timestampText.map(octalFirst) },
          { weight: 1, arbitrary: fc.constant('\\N') },
        ),
        { minLength: 5, maxLength: 5 },
      ),
      duration: fc.oneof({ weight: 10, arbitrary: durationText }, { weight: 1, arbitrary: fc.constant('\\N') }),
    })
    .map(({ sender, type, timestamps, duration }) => {
      const row = [...values];
      row[column.sender] = sender;
      row[column.message_type] = type;
      [...TIMESTAMP_COLUMNS].forEach((c, index) => (row[c] = timestamps[index]!));
      row[column.duration_seconds] = duration;
      return row;
    }),
);

/** Chats: an id (digits or any text, written raw or escaped per row), a count, its messages. */
const chats = fc.array(
  fc.record({
    id: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 99 }).map(String) }, { weight: 1, arbitrary: text }),
    count: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('0', '1', '50', 'x', '\\N') }),
    messages: fc.array(fc.tuple(messageRow, fc.boolean()), { minLength: 1, maxLength: 5 }),
  }),
  { maxLength: 6 },
);

type Chats = typeof chats extends fc.Arbitrary<infer T> ? T : never;

function copyText(chatList: Chats): Buffer {
  const lines: string[] = [];
  for (const chat of chatList) {
    for (const [row, escapeId] of chat.messages) {
      const line = [...row];
      line[column.chat_id] = escapeId ? octalFirst(chat.id) : copyEscape(chat.id);
      line[column.chat_message_count] = chat.count ?? String(chat.messages.length);
      lines.push(line.join('\t') + '\n');
    }
  }
  return Buffer.from(lines.join(''));
}

interface Exported {
  readonly files: readonly string[];
  readonly rowsPerPart: readonly number[];
  readonly csv: readonly string[];
}

/** The string path: the old stage's logic, with the whole COPY text decoded at once. */
function exportByStrings(copy: Buffer, rowsPerFile: number, bom: boolean, options: CsvCellOptions): Exported {
  const planner = new PartPlanner(rowsPerFile);
  const files: string[] = [];
  const rowsPerPart: number[] = [];
  const csv: string[] = [];
  const header = (bom ? UTF8_BOM : '') + CONVERSATION_HEADER_RECORD;
  let groupKey: string | undefined;
  let groupSize = 0;
  let part = -1;
  for (const line of copy.toString('utf8').split('\n').slice(0, -1)) {
    const row = parseCopyTextRow(line, CONVERSATION_SOURCE_COLUMNS.length);
    const key = chatIdOf(row);
    if (key !== groupKey) {
      groupKey = key;
      groupSize = chatRowsOf(row);
    }
    const next = planner.place(key, groupSize);
    if (next !== part) {
      part = next;
      files.push(partFileName('out', part, true));
      rowsPerPart.push(0);
      csv.push(header);
    }
    csv[csv.length - 1] += formatConversationRecord(row, options);
    rowsPerPart[rowsPerPart.length - 1]! += 1;
  }
  if (part === -1) return { files: [partFileName('out', 0, true)], rowsPerPart: [0], csv: [header] };
  return { files, rowsPerPart, csv };
}

function stageOptions(rowsPerFile: number, bom: boolean, options: CsvCellOptions, chunkSize: number): CsvPartsOptions {
  return {
    columns: CONVERSATION_SOURCE_COLUMNS.length,
    headerRecord: CONVERSATION_HEADER_RECORD,
    bom,
    formatRecord: (out, row) => appendConversationRecord(out, row, options),
    groupColumn: CONVERSATION_CHAT_ID_COLUMN,
    groupSize: chatRowsOfCopyRow,
    rowsPerFile,
    multipart: true,
    partName: (index, multipart) => partFileName('out', index, multipart),
    chunkSize,
  };
}

/** Runs the stage over `pieces`; the chunks are kept as pushed, so a reused buffer would show. */
async function exportByBytes(pieces: readonly Buffer[], options: CsvPartsOptions): Promise<Exported> {
  const stage = createCsvPartsStage(options);
  const chunks: ZipEntryChunk[] = [];
  await pipeline(
    Readable.from(pieces),
    stage,
    new Writable({
      objectMode: true,
      write(chunk: ZipEntryChunk, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    }),
  );
  const csv = stage.files.map((file) =>
    Buffer.concat(chunks.filter((chunk) => chunk.entry === file).map((chunk) => chunk.data)).toString('utf8'),
  );
  return { files: stage.files, rowsPerPart: stage.rowsPerPart, csv };
}

/** Cuts `bytes` at the given fractions of its length (duplicates dropped). */
function cut(bytes: Buffer, fractions: readonly number[]): Buffer[] {
  const at = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].filter((i) => i > 0 && i < bytes.length).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const end of [...at, bytes.length]) {
    pieces.push(bytes.subarray(start, end));
    start = end;
  }
  return pieces;
}

async function outcome<T>(run: () => T | Promise<T>): Promise<{ value: T } | { error: string }> {
  try {
    return { value: await run() };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

describe('CsvPartsStage against the string path', () => {
  it('writes the same parts, rows and bytes, however the COPY stream is cut', async () => {
    let compared = 0;
    let failed = 0;
    await fc.assert(
      fc.asyncProperty(
        chats,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 8 }),
        fc.boolean(),
        fc.constantFrom(...guardings),
        fc.constantFrom(1, 100, 64 * 1024),
        async (chatList, fractions, rowsPerFile, bom, options, chunkSize) => {
          const copy = copyText(chatList);
          const expected = await outcome(() => exportByStrings(copy, rowsPerFile, bom, options));
          const actual = await outcome(() => exportByBytes(cut(copy, fractions), stageOptions(rowsPerFile, bom, options, chunkSize)));
          expect(actual).toEqual(expected);
          compared += 1;
          if ('error' in expected) failed += 1;
        },
      ),
      { numRuns: 400 },
    );
    // Both outcomes were exercised: exports, and bad timestamps or durations failing alike.
    expect(failed).toBeGreaterThan(0);
    expect(compared - failed).toBeGreaterThan(compared / 2);
  });

  const row = (body: string): string[] => {
    const values = CONVERSATION_SOURCE_COLUMNS.map(() => '\\N');
    values[column.chat_id] = '1';
    values[column.chat_message_count] = '1';
    values[column.sender] = 'contact';
    values[column.message_type] = 'text';
    values[column.body] = body;
    return values;
  };

  it('cuts inside multi-byte characters and inside escapes alike', async () => {
    const copy = Buffer.from(row('😀\\r\\n中\\\\"é\\101\\x41=').join('\t') + '\n');
    const expected = exportByStrings(copy, 10, true, { formulaGuard: true });
    for (let at = 1; at < copy.length; at++) {
      const pieces = [copy.subarray(0, at), copy.subarray(at)];
      expect(await exportByBytes(pieces, stageOptions(10, true, { formulaGuard: true }, 64 * 1024))).toEqual(expected);
    }
  });
  it('decodes escaped values longer than any before them, each row larger than the last', async () => {
    const bodies = [10, 300, 5_000, 200_000].map((n) => '"\\r\\n\\\\é'.repeat(n));
    const copy = Buffer.from(bodies.map((body) => row(body).join('\t') + '\n').join(''));
    const expected = exportByStrings(copy, 10, true, { formulaGuard: true });
    expect(await exportByBytes(cut(copy, [0.3, 0.6]), stageOptions(10, true, { formulaGuard: true }, 64 * 1024))).toEqual(expected);
  });

  it('passes large unchanged values on without copying, and every chunk keeps its bytes', async () => {
    // Plain (from the input chunk, or from the row joined across chunks) and escaped (decoded into a buffer of its own).
    const bodies = ['a'.repeat(40_000), 'é\\\\'.repeat(30_000), 'b'.repeat(300_000), 'x', 'ü'.repeat(50_000)];
    const copy = Buffer.from(bodies.map((body) => row(body).join('\t') + '\n').join(''));
    const expected = exportByStrings(copy, 10, false, { formulaGuard: true });
    const chunked = Array.from({ length: Math.ceil(copy.length / 65_536) }, (_, i) => copy.subarray(i * 65_536, (i + 1) * 65_536));
    expect(await exportByBytes(chunked, stageOptions(10, false, { formulaGuard: true }, 64 * 1024))).toEqual(expected);
    expect(await exportByBytes([copy], stageOptions(10, false, { formulaGuard: true }, 1))).toEqual(expected);
  });
});

describe('CsvPartsStage input checks', () => {
  const options = stageOptions(10, false, { formulaGuard: true }, 64 * 1024);
  const line = (body: Buffer): Buffer => {
    const values: Buffer[] = CONVERSATION_SOURCE_COLUMNS.map(() => Buffer.from('\\N'));
    values[column.chat_id] = Buffer.from('1');
    values[column.body] = body;
    return Buffer.concat([...values.flatMap((value) => [value, Buffer.from('\t')]).slice(0, -1), Buffer.from('\n')]);
  };

  it.each([
    ['a lone continuation byte', Buffer.from([0x61, 0x80])],
    ['a truncated sequence', Buffer.from([0xe4, 0xb8])],
    ['an overlong encoding', Buffer.from([0xc0, 0xaf])],
    ['a surrogate', Buffer.from([0xed, 0xa0, 0x80])],
  ])('fails on invalid UTF-8: %s, in one chunk or cut inside it', async (_name, bad) => {
    const copy = Buffer.concat([line(Buffer.from('ok')), line(bad)]);
    for (const pieces of [[copy], cut(copy, [(copy.length - 3) / copy.length])]) {
      await expect(exportByBytes(pieces, options)).rejects.toThrow(/not valid UTF-8/);
    }
  });

  it('fails on a stream that ends inside a row', async () => {
    const copy = line(Buffer.from('ok'));
    await expect(exportByBytes([copy.subarray(0, -1)], options)).rejects.toThrow('COPY output ended in the middle of a row');
  });

  it('keeps a byte order mark that starts a value at the start of a chunk', async () => {
    // The string path decoded each chunk with a TextDecoder, which drops a BOM at the start of its input.
    const copy = Buffer.from('1\ta\n\uFEFF2\tb\n');
    const rows: string[] = [];
    const stage = createCsvPartsStage({
      ...options,
      columns: 2,
      headerRecord: 'a,b\r\n',
      formatRecord: (out, row) => {
        rows.push(row.text(0)!);
        out.string(`${row.text(0)}\r\n`);
      },
      groupColumn: 0,
      groupSize: () => 1,
    });
    await pipeline(Readable.from([copy.subarray(0, 4), copy.subarray(4)]), stage, new Writable({ objectMode: true, write: (_c, _e, cb) => cb() }));
    expect(rows).toEqual(['1', '\uFEFF2']);
  });
});
