/**
 * docs/deploy.md checked against the code, so the recipe cannot drift from what it deploys: the
 * variables it sets are variables the code reads, every variable the code reads is documented, the
 * command lines it hands the CLI parse, the topics and jobs it uses are ones it creates, and the
 * bucket's lifecycle outlasts the links the mail step signs.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_READY_TOPIC } from '../cli/announcer.js';
import { buildProgram } from '../cli/program.js';
import { DEFAULT_RETENTION_DAYS } from '../jobs/mailer/link-window.js';
import { MAX_SIGNED_URL_SECONDS } from '../sinks/gcs.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The folders the image ships (see the Dockerfile): production code only. */
const PRODUCTION_DIRS = ['cli', 'config', 'db', 'jobs', 'pipeline', 'sinks', 'sources', 'transforms'];

/** The ways this code reads a variable: `process.env.X`, `env.X`, `env['X']`, `helper(env, 'X'...)`, backfill's `pick(flag, value, 'X')`. */
const READ_PATTERNS = [
  /process\.env\.([A-Z][A-Z0-9_]*)/g,
  /\benv\.([A-Z][A-Z0-9_]*)/g,
  /\benv\[\s*'([A-Z][A-Z0-9_]*)'\s*\]/g,
  /\(\s*(?:process\.)?env\s*,\s*'([A-Z][A-Z0-9_]*)'/g,
  /\bpick\(\s*'[^']*'\s*,\s*[^,]+,\s*'([A-Z][A-Z0-9_]*)'\s*\)/g,
];

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map(async (entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return await sourceFiles(path);
      return entry.name.endsWith('.ts') ? [path] : [];
    }),
  );
  return nested.flat();
}

/** Every environment variable the production code reads. */
async function variablesReadByCode(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const dir of PRODUCTION_DIRS) {
    for (const file of await sourceFiles(join(ROOT, dir))) {
      const text = await readFile(file, 'utf8');
      for (const pattern of READ_PATTERNS) for (const match of text.matchAll(pattern)) names.add(match[1] as string);
    }
  }
  return names;
}

/** Shell assignments `NAME="value"` in the document, for expanding `"$NAME"` in flags. */
function shellAssignments(doc: string): Map<string, string> {
  return new Map([...doc.matchAll(/^([A-Z_]+)="([^"]*)"$/gm)].map((match) => [match[1] as string, match[2] as string]));
}

/** The variable names the document sets on Cloud Run resources and in the workflow's overrides. */
function variablesSetByDoc(doc: string): Set<string> {
  const assignments = shellAssignments(doc);
  const names = new Set<string>();
  for (const match of doc.matchAll(/--(?:set|update)-(?:env-vars|secrets)=(?:"([^"]*)"|(\S+))/g)) {
    let value = match[1] ?? (match[2] as string);
    const variable = /^\$([A-Z_]+)$/.exec(value)?.[1];
    if (variable !== undefined) {
      const assigned = assignments.get(variable);
      if (assigned === undefined) throw new Error(`docs/deploy.md uses $${variable} in a flag but never assigns it`);
      value = assigned;
    }
    for (const pair of value.split(',')) names.add(pair.split('=')[0] as string);
  }
  for (const match of doc.matchAll(/^\s*- name: ([A-Z][A-Z0-9_]*)\s*$/gm)) names.add(match[1] as string);
  return names;
}

/** The CLI argument lists the document runs: `--args=a,b,c` values and `npx audit-export ...` lines. */
function commandLines(doc: string): string[][] {
  const lines: string[][] = [];
  for (const match of doc.matchAll(/--args=([^\s"'`\\]+)/g)) lines.push((match[1] as string).split(','));
  for (const match of doc.matchAll(/^npx audit-export ([^#\n]*)/gm)) lines.push((match[1] as string).trim().split(/\s+/));
  for (const match of doc.matchAll(/^\s*- args: \[(.*)\]\s*$/gm)) lines.push(JSON.parse(`[${match[1]}]`) as string[]);
  return lines;
}

/** Parses `argv` with the real command tree; no action's work runs (the runner is a no-op). */
async function parses(argv: readonly string[]): Promise<void> {
  const program = buildProgram(pino({ level: 'silent' }), async () => {});
  await program.parseAsync([...argv], { from: 'user' });
}

let doc = '';
let readme = '';
let codeVariables = new Set<string>();
beforeAll(async () => {
  doc = await readFile(join(ROOT, 'docs', 'deploy.md'), 'utf8');
  readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  codeVariables = await variablesReadByCode();
});

describe('docs/deploy.md against the code', () => {
  it('finds the variables the code reads (the extraction itself works)', () => {
    for (const name of ['DATABASE_URL', 'STATE_DATABASE_URL', 'OUTPUT_URI', 'EXPORT_REQUEST', 'READY_TOPIC', 'SMTP_URL', 'PUSH_AUDIENCE', 'CLOUD_RUN_TASK_INDEX', 'LOG_LEVEL']) {
      expect(codeVariables, name).toContain(name);
    }
  });

  it('sets only variables the code reads', () => {
    const set = variablesSetByDoc(doc);
    // The document does configure these; an empty extraction would prove nothing.
    for (const name of ['DATABASE_URL', 'STATE_DATABASE_URL', 'OUTPUT_URI', 'SMTP_URL', 'MAIL_FROM', 'PUSH_AUDIENCE', 'PUSH_SERVICE_ACCOUNT', 'EXPORT_REQUEST']) {
      expect(set, name).toContain(name);
    }
    const unknown = [...set].filter((name) => !codeVariables.has(name));
    expect(unknown, 'set by docs/deploy.md but read nowhere in the code').toEqual([]);
  });

  it('documents every variable the code reads, in the deployment reference and in the README', () => {
    const missing = (text: string) => [...codeVariables].filter((name) => !text.includes(`\`${name}\``)).sort();
    expect(missing(doc), 'missing from docs/deploy.md').toEqual([]);
    expect(missing(readme), 'missing from README.md').toEqual([]);
  });

  it('runs only command lines the CLI parses', async () => {
    const lines = commandLines(doc);
    expect(lines.length).toBeGreaterThanOrEqual(10);
    for (const line of lines) {
      await expect(parses(line), line.join(' ')).resolves.toBeUndefined();
    }
  });

  it('the parse check rejects what the CLI rejects', async () => {
    await expect(parses(['worker', '--subscription=x', '--concurency=2'])).rejects.toThrow(/unknown option/);
    await expect(parses(['worker'])).rejects.toThrow(/--subscription/);
    await expect(parses(['export-conversations'])).rejects.toThrow(/unknown command/);
  });

  it('uses only topics it creates, and READY_TOPIC names the one exports announce on', () => {
    const created = new Set([...doc.matchAll(/gcloud pubsub topics create (\S+)/g)].map((match) => match[1] as string));
    const used = [
      ...doc.matchAll(/--(?:dead-letter-)?topic=(\S+)/g),
      ...doc.matchAll(/gcloud pubsub topics (?:publish|add-iam-policy-binding) ("?)([^\s"]+)\1/g),
    ].map((match) => match[match.length - 1] as string);
    const loopTopics = [...doc.matchAll(/for t in ([^;]+); do/g)].flatMap((match) => (match[1] as string).trim().split(/\s+/));
    const unknown = [...used, ...loopTopics].filter((topic) => topic !== '$t' && !created.has(topic.replace(/^projects\/\$PROJECT\/topics\//, '')));
    expect(unknown).toEqual([]);
    const readyTopics = [...doc.matchAll(/READY_TOPIC=([^,"\s`)]+)/g)].map((match) => match[1]);
    expect(readyTopics.length).toBeGreaterThan(0);
    for (const topic of readyTopics) expect(topic).toBe(DEFAULT_READY_TOPIC);
    expect(created).toContain(DEFAULT_READY_TOPIC);
  });

  it('executes and grants on only jobs it deploys', () => {
    const deployed = new Set([...doc.matchAll(/gcloud run jobs deploy (\S+)/g)].map((match) => match[1] as string));
    const referenced = [
      ...doc.matchAll(/gcloud run jobs (?:execute|add-iam-policy-binding) (\S+)/g),
      ...doc.matchAll(/\/jobs\/(audit-export-[a-z-]+)/g),
    ].map((match) => match[1] as string);
    expect(referenced.length).toBeGreaterThan(0);
    expect(referenced.filter((job) => !deployed.has(job))).toEqual([]);
  });

  it("keeps exports (and only exports) longer than the mail step's links last", () => {
    const json = /<<'JSON'\n([\s\S]*?)\nJSON\n/.exec(doc)?.[1];
    expect(json).toBeDefined();
    const config = JSON.parse(json as string) as {
      lifecycle: { rule: { action: { type: string }; condition: { age: number; matchesPrefix: string[] } }[] };
    };
    const [rule] = config.lifecycle.rule;
    expect(rule?.action.type).toBe('Delete');
    // Cloud Storage counts age in whole days; the link is valid for its seconds from signing, after the upload.
    expect(rule?.condition.age).toBe(Math.ceil(MAX_SIGNED_URL_SECONDS / 86_400) + 1);
    const outputUri = /OUTPUT_URI=gs:\/\/\$BUCKET\/([^,"\s`)]+)/.exec(doc)?.[1];
    expect(rule?.condition.matchesPrefix).toEqual([`${outputUri}/`]);
    expect(doc).toMatch(/--out=gs:\/\/\$BUCKET\/backfill/);
    expect(`backfill/`.startsWith(rule?.condition.matchesPrefix[0] as string)).toBe(false);
  });

  it("tells the mail step the lifecycle's age, so that no link outlives its file", () => {
    const age = Number(/"age": (\d+)/.exec(doc)?.[1]);
    const set = [...doc.matchAll(/EXPORT_RETENTION_DAYS=(\d+)/g)].map((match) => Number(match[1]));
    expect(set.length).toBeGreaterThan(0);
    for (const days of set) expect(days).toBe(age);
    expect(DEFAULT_RETENTION_DAYS).toBe(age);
  });
});
