import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import ExcelJS from 'exceljs';
import { temporaryDirectory } from './export.js';

const run = promisify(execFile);

/**
 * A cell as a reader gave it, reduced to a type and a text to compare: numbers by their shortest
 * decimal, date-times as `YYYY-MM-DD HH:MM:SS` (rounded to the second), booleans as `true`/`false`.
 * An empty or missing cell is `null`.
 */
export type TypedCell = { readonly type: 'number' | 'string' | 'boolean' | 'date'; readonly text: string } | null;

/** One sheet as read back. */
export interface ReadSheet {
  readonly name: string;
  /** Rows from the first, header included; each row as wide as the widest row. */
  readonly rows: TypedCell[][];
}

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

/** A UTC `Date` (how both readers give an Excel date-time) as `YYYY-MM-DD HH:MM:SS`, rounded to the second. */
export function dateText(date: Date): string {
  const rounded = new Date(Math.round(date.getTime() / 1000) * 1000);
  return (
    `${rounded.getUTCFullYear()}-${pad(rounded.getUTCMonth() + 1)}-${pad(rounded.getUTCDate())} ` +
    `${pad(rounded.getUTCHours())}:${pad(rounded.getUTCMinutes())}:${pad(rounded.getUTCSeconds())}`
  );
}

function square(rows: TypedCell[][]): TypedCell[][] {
  const width = Math.max(0, ...rows.map((row) => row.length));
  return rows.map((row) => [...row, ...Array<TypedCell>(width - row.length).fill(null)]);
}

/** Reads every sheet with exceljs (npm), keeping each cell's type. */
export async function readWithExceljs(path: string): Promise<ReadSheet[]> {
  const workbook = new ExcelJS.Workbook();
  await workbook.xlsx.readFile(path);
  return workbook.worksheets.map((sheet) => {
    const rows: TypedCell[][] = [];
    sheet.eachRow({ includeEmpty: true }, (row, rowNumber) => {
      const cells: TypedCell[] = [];
      row.eachCell({ includeEmpty: true }, (cell, column) => {
        const value = cell.value;
        let typed: TypedCell = null;
        if (typeof value === 'number') typed = { type: 'number', text: String(value) };
        else if (typeof value === 'boolean') typed = { type: 'boolean', text: String(value) };
        else if (value instanceof Date) typed = { type: 'date', text: dateText(value) };
        else if (typeof value === 'string') typed = value.length === 0 ? null : { type: 'string', text: value };
        else if (value !== null && value !== undefined) throw new Error(`Unexpected cell value ${JSON.stringify(value)}`);
        cells[column - 1] = typed;
      });
      rows[rowNumber - 1] = Array.from(cells, (cell) => cell ?? null);
    });
    return { name: sheet.name, rows: square(Array.from(rows, (row) => row ?? [])) };
  });
}

const OPENPYXL_READ = `
import json, sys, datetime
import openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
out = []
for ws in wb.worksheets:
    rows = []
    for row in ws.iter_rows():
        cells = []
        for cell in row:
            v = cell.value
            if v is None or v == '':
                cells.append(None)
            elif isinstance(v, bool):
                cells.append({'type': 'boolean', 'text': 'true' if v else 'false'})
            elif isinstance(v, datetime.datetime):
                v = (v + datetime.timedelta(microseconds=500000)).replace(microsecond=0)
                cells.append({'type': 'date', 'text': v.strftime('%Y-%m-%d %H:%M:%S')})
            elif isinstance(v, (int, float)):
                cells.append({'type': 'number', 'text': repr(v) if isinstance(v, int) else ('%d' % v if v == int(v) else repr(v))})
            elif isinstance(v, str):
                cells.append({'type': 'string', 'text': v})
            else:
                raise Exception('unexpected cell %r' % (v,))
        rows.append(cells)
    out.append({'name': ws.title, 'rows': rows})
print(json.dumps(out))
`;

async function requireCommand(command: string, check: string[], install: string): Promise<void> {
  try {
    await run(command, check);
  } catch {
    throw new Error(`\`${command}\` is needed to read workbooks with an independent reader: ${install} (.ci/run does it)`);
  }
}

/** Reads every sheet with Python's openpyxl (Debian's python3-openpyxl). */
export async function readWithOpenpyxl(path: string): Promise<ReadSheet[]> {
  // Debian's package is in the system Python, which a pyenv or venv python3 earlier on PATH lacks.
  let python = 'python3';
  try {
    await run(python, ['-c', 'import openpyxl']);
  } catch {
    python = '/usr/bin/python3';
    await requireCommand(python, ['-c', 'import openpyxl'], 'apt-get install -y python3-openpyxl');
  }
  const { stdout } = await run(python, ['-c', OPENPYXL_READ, path], { maxBuffer: 256 * 1024 * 1024 });
  const sheets = JSON.parse(stdout) as ReadSheet[];
  return sheets.map((sheet) => ({ name: sheet.name, rows: square(sheet.rows) }));
}

/**
 * Converts every sheet to CSV with LibreOffice headless (Debian's libreoffice-calc-nogui): cells as
 * shown (number formats applied), UTF-8, comma-separated, one file per sheet; keyed by sheet name.
 */
export async function convertSheetsWithLibreOffice(path: string, sheetNames: readonly string[]): Promise<Map<string, Buffer>> {
  await requireCommand('soffice', ['--version'], 'apt-get install -y libreoffice-calc-nogui');
  const outdir = await temporaryDirectory('audit-export-soffice-');
  // A profile of its own: a second soffice on the same default profile waits for the first.
  const profile = await temporaryDirectory('audit-export-soffice-profile-');
  await run(
    'soffice',
    [
      `-env:UserInstallation=file://${profile}`,
      '--headless',
      '--convert-to',
      // comma, double quote, UTF-8, from row 1, ..., as shown, ..., every sheet to its own file (-1)
      'csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1',
      '--outdir',
      outdir,
      path,
    ],
    { timeout: 120_000 },
  );
  const stem = basename(path).replace(/\.xlsx$/, '');
  const files = await readdir(outdir);
  const sheets = new Map<string, Buffer>();
  for (const name of sheetNames) {
    const file = `${stem}-${name}.csv`;
    if (!files.includes(file)) throw new Error(`LibreOffice wrote ${files.join(', ')}, not ${file}`);
    sheets.set(name, await readFile(join(outdir, file)));
  }
  return sheets;
}
