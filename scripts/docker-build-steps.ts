#!/usr/bin/env node
/**
 * Performs the Dockerfile's build steps without a Docker engine, then runs the result as the image
 * would run it, so the image's contents are proven where no image can be built.
 *
 *     DATABASE_URL=postgres://... node scripts/docker-build-steps.ts [--dockerfile FILE] [--keep]
 *
 * The steps are not restated here: the Dockerfile is parsed, and every stage is performed in a
 * clean directory of its own that stands for the stage's file system (`/app` is `STAGE/app`):
 * `COPY` from the build context (honouring `.dockerignore`) or `--from` an earlier stage, `RUN`
 * through `/bin/sh -c` with the stage's `ENV`, `WORKDIR`, `USER`, `ENTRYPOINT`. An instruction or
 * flag the script does not know is an error, so the Dockerfile cannot drift out of what is proven.
 * The base image `node:N-...` is stood in for by the Node running this script (which must be major
 * N) and the npm on PATH, linked into the stage's `/usr/local/bin` like the image's.
 *
 * Then, on the final stage: no development dependency installed (per package-lock.json), no test,
 * bench or TypeScript code outside node_modules, every file readable by any user, no node_modules
 * above `/app` to resolve from; and the ENTRYPOINT's exact command (node flags included), with only
 * the stage's bin on PATH and none of this machine's NODE_* variables, runs as USER (uid and gid of
 * `node`, 1000, when this script runs as root; otherwise as this user on a read-only `/app`) from
 * the WORKDIR: `--help` for the Cloud Run job commands, `db migrate`, `db seed`, `export
 * conversations`, `run` and `backfill` against DATABASE_URL into a writable folder outside `/app`,
 * the default `--out` (inside the read-only `/app`) failing with a clear error, and no DATABASE_URL
 * failing with the message that says to set it (the embedded PostgreSQL is a dev dependency).
 *
 * DATABASE_URL must name a database this script may migrate and seed (a test database).
 * Exit 0 and one JSON summary line on stdout when every check passed; 1 with the reason on stderr.
 * Logs of the steps go to stderr. Differences from `docker build`, none of which changes what ends
 * up in the image: the stages share one npm cache (the runtime stage does not download again), and
 * the network settings of this machine (proxy, extra CA certificates, registry) are passed on.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, chown, copyFile, cp, link, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, posix, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** One Dockerfile instruction this script can perform, with its (first) line number. */
export type Step =
  | { readonly kind: 'WORKDIR'; readonly line: number; readonly path: string }
  | {
      readonly kind: 'COPY';
      readonly line: number;
      /** `--from`: an earlier stage's name or index; undefined copies from the build context. */
      readonly from: string | undefined;
      readonly sources: readonly string[];
      readonly destination: string;
    }
  | { readonly kind: 'RUN'; readonly line: number; readonly command: string }
  | { readonly kind: 'ENV'; readonly line: number; readonly name: string; readonly value: string }
  | { readonly kind: 'USER'; readonly line: number; readonly user: string }
  | { readonly kind: 'ENTRYPOINT'; readonly line: number; readonly argv: readonly string[] }
  | { readonly kind: 'LABEL'; readonly line: number; readonly name: string; readonly value: string };

/** A build stage: `FROM image [AS name]` and its steps. */
export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly line: number;
  readonly steps: readonly Step[];
}

/** A Dockerfile instruction, flag or form that this script does not know how to perform. */
export class DockerfileError extends Error {
  constructor(line: number, message: string) {
    super(`Dockerfile line ${line}: ${message}`);
    this.name = 'DockerfileError';
  }
}

/** Users of the base image, by name: the official node images create `node` as 1000:1000. */
const IMAGE_USERS: Readonly<Record<string, { uid: number; gid: number }>> = {
  root: { uid: 0, gid: 0 },
  node: { uid: 1000, gid: 1000 },
};

/** The image's default PATH (the official node images keep Debian's), after the stage's own bin. */
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** This machine's network settings that npm needs to reach the registry; nothing else is passed on. */
const NETWORK_VARIABLES = [
  'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy',
  'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'npm_config_registry', 'NPM_CONFIG_REGISTRY',
] as const;

interface LogicalLine {
  readonly line: number;
  readonly text: string;
}

/** Joins `\`-continued lines and drops comments and blank lines, as Docker's parser does. */
function logicalLines(text: string): LogicalLine[] {
  const result: LogicalLine[] = [];
  let current: LogicalLine | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const trimmed = raw.trim();
    // Comment and empty lines are dropped even inside a continuation.
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const continued = /\\\s*$/.test(raw);
    const content = continued ? raw.replace(/\\\s*$/, '') : raw;
    current = current === undefined ? { line: index + 1, text: content.trimStart() } : { line: current.line, text: current.text + content };
    if (!continued) {
      result.push({ line: current.line, text: current.text.trim() });
      current = undefined;
    }
  });
  if (current !== undefined) result.push({ line: current.line, text: current.text.trim() });
  return result;
}

/** Splits `KEY=value KEY2="a b"` pairs (ENV, LABEL); quotes group, `\"` escapes inside double quotes. */
function keyValuePairs(line: number, keyword: string, rest: string): Array<{ name: string; value: string }> {
  const pairs: Array<{ name: string; value: string }> = [];
  let i = 0;
  while (i < rest.length) {
    while (i < rest.length && /\s/.test(rest[i]!)) i++;
    if (i >= rest.length) break;
    const equals = rest.indexOf('=', i);
    const name = equals < 0 ? '' : rest.slice(i, equals);
    if (name === '' || /\s/.test(name)) {
      throw new DockerfileError(line, `${keyword} needs KEY=VALUE pairs (the legacy "${keyword} KEY VALUE" form is not supported), got "${rest}"`);
    }
    i = equals + 1;
    let value = '';
    while (i < rest.length && !/\s/.test(rest[i]!)) {
      const quote = rest[i];
      if (quote === '"' || quote === "'") {
        const end = rest.indexOf(quote, i + 1);
        if (end < 0) throw new DockerfileError(line, `${keyword}: unterminated ${quote} in "${rest}"`);
        const quoted = rest.slice(i + 1, end);
        value += quote === '"' ? quoted.replace(/\\(["\\$])/g, '$1') : quoted;
        i = end + 1;
      } else {
        value += quote;
        i++;
      }
    }
    if (/\$/.test(value)) throw new DockerfileError(line, `${keyword} ${name}: variable substitution is not supported`);
    pairs.push({ name, value });
  }
  return pairs;
}

/** A JSON array of strings (the exec form), or undefined when `rest` is not one. */
function execForm(line: number, keyword: string, rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(rest);
  } catch {
    throw new DockerfileError(line, `${keyword}: not a valid JSON array: ${rest}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((item): item is string => typeof item === 'string')) {
    throw new DockerfileError(line, `${keyword}: expected a non-empty JSON array of strings, got ${rest}`);
  }
  return parsed;
}

/**
 * Parses a Dockerfile into stages. Only what this script can perform faithfully is accepted:
 * FROM (no flags), WORKDIR, COPY (`--from` only; no wildcards), RUN (shell form, no flags), ENV and
 * LABEL (`KEY=VALUE`), USER, ENTRYPOINT (exec form); no variable substitution. Anything else
 * throws a {@link DockerfileError} naming the line, so an unproven step cannot slip in.
 */
export function parseDockerfile(text: string): Stage[] {
  const stages: Array<{ image: string; name: string | undefined; line: number; steps: Step[] }> = [];
  for (const { line, text: instruction } of logicalLines(text)) {
    const match = /^(\S+)\s*(.*)$/s.exec(instruction);
    const keyword = (match?.[1] ?? '').toUpperCase();
    const rest = (match?.[2] ?? '').trim();
    if (keyword === 'FROM') {
      const words = rest.split(/\s+/);
      if (words[0]?.startsWith('--')) throw new DockerfileError(line, `FROM ${words[0]} is not supported`);
      if (words.length === 1 && words[0] !== '') stages.push({ image: words[0]!, name: undefined, line, steps: [] });
      else if (words.length === 3 && words[1]!.toUpperCase() === 'AS') stages.push({ image: words[0]!, name: words[2]!, line, steps: [] });
      else throw new DockerfileError(line, `expected "FROM image [AS name]", got "FROM ${rest}"`);
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) throw new DockerfileError(line, `${keyword} before the first FROM`);
    if (rest === '') throw new DockerfileError(line, `${keyword} without arguments`);
    switch (keyword) {
      case 'WORKDIR':
        if (rest.includes('$')) throw new DockerfileError(line, 'WORKDIR: variable substitution is not supported');
        stage.steps.push({ kind: 'WORKDIR', line, path: rest });
        break;
      case 'COPY': {
        const words = execForm(line, 'COPY', rest) ?? rest.split(/\s+/);
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift()!;
          if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
          else throw new DockerfileError(line, `COPY ${flag} is not supported (it would change what the image holds: teach it to scripts/docker-build-steps.ts)`);
        }
        if (words.length < 2) throw new DockerfileError(line, `COPY needs a source and a destination, got "${rest}"`);
        const destination = words.pop()!;
        for (const word of [...words, destination]) {
          if (/[*?[$]/.test(word)) throw new DockerfileError(line, `COPY ${word}: wildcards and variables are not supported`);
        }
        if (words.length > 1 && !destination.endsWith('/')) {
          throw new DockerfileError(line, `COPY with several sources needs a destination ending in /, got "${destination}"`);
        }
        stage.steps.push({ kind: 'COPY', line, from, sources: words, destination });
        break;
      }
      case 'RUN':
        if (rest.startsWith('[') || rest.startsWith('--')) throw new DockerfileError(line, 'RUN: only the shell form without flags is supported');
        stage.steps.push({ kind: 'RUN', line, command: rest });
        break;
      case 'ENV':
        for (const { name, value } of keyValuePairs(line, 'ENV', rest)) stage.steps.push({ kind: 'ENV', line, name, value });
        break;
      case 'LABEL':
        for (const { name, value } of keyValuePairs(line, 'LABEL', rest)) stage.steps.push({ kind: 'LABEL', line, name, value });
        break;
      case 'USER':
        if (/\s|\$/.test(rest)) throw new DockerfileError(line, `USER: expected one user, got "${rest}"`);
        stage.steps.push({ kind: 'USER', line, user: rest });
        break;
      case 'ENTRYPOINT': {
        const argv = execForm(line, 'ENTRYPOINT', rest);
        // The shell form runs the program under /bin/sh -c, which does not pass SIGTERM on: a Cloud
        // Run job's worker would never hear it is being stopped.
        if (argv === undefined) throw new DockerfileError(line, 'ENTRYPOINT must use the exec form (a JSON array), so signals reach node');
        stage.steps.push({ kind: 'ENTRYPOINT', line, argv });
        break;
      }
      default:
        throw new DockerfileError(line, `${keyword} is not supported by scripts/docker-build-steps.ts (teach it there, or use a supported instruction)`);
    }
  }
  if (stages.length === 0) throw new DockerfileError(1, 'no FROM: the Dockerfile has no stage');
  return stages;
}

/** A `.dockerignore` as a predicate on context-relative paths (`a/b`); a directory excludes its contents. */
export function parseDockerignore(text: string): (path: string) => boolean {
  const patterns = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      if (line.startsWith('!')) throw new Error(`.dockerignore: exceptions ("${line}") are not supported by scripts/docker-build-steps.ts`);
      const cleaned = posix.normalize(line.replace(/^\/+/, '')).replace(/\/+$/, '');
      let source = '';
      for (let i = 0; i < cleaned.length; i++) {
        const char = cleaned[i]!;
        if (cleaned.startsWith('**/', i)) {
          // Any number of folders, none included.
          source += '(?:.*/)?';
          i += 2;
        } else if (char === '*' && cleaned[i + 1] === '*') {
          source += '.*';
          i++;
        } else if (char === '*') source += '[^/]*';
        else if (char === '?') source += '[^/]';
        else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return new RegExp(`^${source}(/.*)?$`);
    });
  return (path) => patterns.some((pattern) => pattern.test(path));
}

/** A stage being performed: its file system root on this machine and the state Docker keeps. */
interface StageState {
  readonly stage: Stage;
  readonly root: string;
  workdir: string;
  readonly env: Map<string, string>;
  readonly labels: Map<string, string>;
  user: string | undefined;
  entrypoint: readonly string[] | undefined;
}

/** Where the container path `path` (absolute, or relative to the WORKDIR) lies on this machine. */
function hostPath(state: StageState, path: string): string {
  return join(state.root, posix.resolve(state.workdir, path));
}

function log(message: string): void {
  process.stderr.write(`docker-build-steps: ${message}\n`);
}

/** The first executable `name` on PATH, resolved through symlinks. */
async function onPath(name: string): Promise<string> {
  for (const directory of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(directory, name);
    try {
      if ((await stat(candidate)).isFile()) return await realpath(candidate);
    } catch {
      // Not in this directory.
    }
  }
  throw new Error(`${name} is not on PATH: the build steps run npm like the node image does`);
}

/**
 * Creates the stage's file system with what the base image `node:N...` provides that the steps use:
 * node and npm in /usr/local/bin, /tmp, the homes of root and node. The Node running this script
 * stands in for the image's and must have its major version.
 */
async function prepareBase(stage: Stage, root: string, npm: string): Promise<void> {
  const match = /^(?:docker\.io\/(?:library\/)?)?node:(\d+)(?:[.-][^@]*)?(?:@sha256:[0-9a-f]+)?$/.exec(stage.image);
  if (match === null) {
    throw new DockerfileError(stage.line, `FROM ${stage.image}: only the official node images (node:N...) can be stood in for here`);
  }
  const major = process.versions.node.split('.')[0];
  if (match[1] !== major) {
    throw new Error(
      `the Dockerfile builds on ${stage.image} (Node ${match[1]}) but this script runs on Node ${process.versions.node}: ` +
        `run it with Node ${match[1]} (first on PATH)`,
    );
  }
  const bin = join(root, 'usr/local/bin');
  await mkdir(bin, { recursive: true });
  // A hard link costs nothing; another file system needs a copy (copyFile keeps the mode).
  await link(process.execPath, join(bin, 'node')).catch(() => copyFile(process.execPath, join(bin, 'node')));
  await symlink(npm, join(bin, 'npm'));
  await mkdir(join(root, 'tmp'));
  await chmod(join(root, 'tmp'), 0o1777);
  await mkdir(join(root, 'root'), { mode: 0o700 });
  await mkdir(join(root, 'home/node'), { recursive: true });
}

/** Spawns and waits; output goes to stderr (stdout carries only the summary). */
async function runCommand(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<number> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 2, 2] });
  return await new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolvePromise(code ?? (signal === null ? 1 : 128)));
  });
}

/** Performs `COPY` from the build context, skipping what `.dockerignore` excludes. */
async function copyFromContext(state: StageState, step: Extract<Step, { kind: 'COPY' }>, context: string, ignored: (path: string) => boolean): Promise<void> {
  for (const source of step.sources) {
    const relativeSource = posix.normalize(source.replace(/^\/+/, ''));
    if (relativeSource.startsWith('..')) throw new DockerfileError(step.line, `COPY ${source}: outside the build context`);
    const from = join(context, relativeSource);
    if (ignored(relativeSource) || !existsSync(from)) {
      throw new DockerfileError(step.line, `COPY ${source}: not found in the build context${existsSync(from) ? ' (excluded by .dockerignore)' : ''}`);
    }
    await copyInto(from, state, step, (path) => !ignored(relative(context, path).split('\\').join('/')));
  }
}

/** Docker's COPY rules: a directory's contents go into the destination; a file into it when it is one. */
async function copyInto(from: string, state: StageState, step: Extract<Step, { kind: 'COPY' }>, filter: (path: string) => boolean): Promise<void> {
  const destination = hostPath(state, step.destination);
  if ((await stat(from)).isDirectory()) {
    await cp(from, destination, { recursive: true, filter, verbatimSymlinks: true });
    return;
  }
  const intoDirectory = step.destination.endsWith('/') || (existsSync(destination) && statSync(destination).isDirectory());
  const target = intoDirectory ? join(destination, from.split('/').pop()!) : destination;
  await mkdir(dirname(target), { recursive: true });
  await copyFile(from, target);
}

/** The final stage as built: where it lies and how its container starts. */
export interface BuiltImage {
  /** The folder holding every stage (and, for the runs, the exports). */
  readonly root: string;
  /** The final stage's file system root: container path /x is here/x. */
  readonly stageRoot: string;
  /** The final stage's WORKDIR on this machine. */
  readonly appDirectory: string;
  readonly workdir: string;
  readonly env: ReadonlyMap<string, string>;
  readonly labels: ReadonlyMap<string, string>;
  readonly user: string | undefined;
  readonly entrypoint: readonly string[];
  readonly stages: ReadonlyArray<{ readonly name: string; readonly root: string; readonly seconds: number }>;
}

/** Performs every stage of `stages` under `root`, one directory per stage. */
export async function buildStages(stages: readonly Stage[], root: string, context: string, npmCache: string): Promise<BuiltImage> {
  const npm = await onPath('npm');
  const dockerignorePath = join(context, '.dockerignore');
  const ignored = existsSync(dockerignorePath) ? parseDockerignore(await readFile(dockerignorePath, 'utf8')) : () => false;
  const network = Object.fromEntries(NETWORK_VARIABLES.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]]])));
  const built: StageState[] = [];
  const timings: Array<{ name: string; root: string; seconds: number }> = [];
  for (const [index, stage] of stages.entries()) {
    const started = performance.now();
    const name = stage.name ?? String(index);
    const stageRoot = join(root, `stage-${index}-${name}`);
    await mkdir(stageRoot);
    await prepareBase(stage, stageRoot, npm);
    const state: StageState = { stage, root: stageRoot, workdir: '/', env: new Map(), labels: new Map(), user: undefined, entrypoint: undefined };
    log(`stage ${name}: FROM ${stage.image} in ${stageRoot}`);
    for (const step of stage.steps) {
      switch (step.kind) {
        case 'WORKDIR':
          state.workdir = posix.resolve(state.workdir, step.path);
          await mkdir(hostPath(state, '.'), { recursive: true });
          break;
        case 'ENV':
          state.env.set(step.name, step.value);
          break;
        case 'LABEL':
          state.labels.set(step.name, step.value);
          break;
        case 'USER':
          state.user = step.user;
          break;
        case 'ENTRYPOINT':
          state.entrypoint = step.argv;
          break;
        case 'COPY': {
          log(`stage ${name}: COPY ${step.from === undefined ? '' : `--from=${step.from} `}${step.sources.join(' ')} ${step.destination}`);
          if (step.from === undefined) {
            await copyFromContext(state, step, context, ignored);
            break;
          }
          const source = built.find((other, otherIndex) => other.stage.name === step.from || String(otherIndex) === step.from);
          if (source === undefined) throw new DockerfileError(step.line, `COPY --from=${step.from}: no earlier stage of that name`);
          for (const path of step.sources) {
            const from = join(source.root, posix.resolve(source.workdir, path));
            if (!existsSync(from)) throw new DockerfileError(step.line, `COPY --from=${step.from} ${path}: the stage has no such file`);
            await copyInto(from, state, step, () => true);
          }
          break;
        }
        case 'RUN': {
          if (state.user !== undefined && state.user !== 'root') {
            throw new DockerfileError(step.line, `RUN after USER ${state.user} is not supported: the steps run as this machine's user`);
          }
          log(`stage ${name}: RUN ${step.command}`);
          const env: NodeJS.ProcessEnv = {
            ...network,
            PATH: `${join(stageRoot, 'usr/local/bin')}:${IMAGE_PATH}`,
            HOME: join(stageRoot, 'root'),
            TMPDIR: join(stageRoot, 'tmp'),
            npm_config_cache: npmCache,
            ...Object.fromEntries(state.env),
          };
          const code = await runCommand('/bin/sh', ['-c', step.command], { cwd: hostPath(state, '.'), env });
          if (code !== 0) throw new DockerfileError(step.line, `RUN ${step.command} exited with ${code}`);
          break;
        }
      }
    }
    built.push(state);
    timings.push({ name, root: stageRoot, seconds: round((performance.now() - started) / 1000) });
  }
  const final = built.at(-1)!;
  if (final.entrypoint === undefined) throw new DockerfileError(final.stage.line, 'the final stage has no ENTRYPOINT');
  return {
    root,
    stageRoot: final.root,
    appDirectory: hostPath(final, '.'),
    workdir: final.workdir,
    env: final.env,
    labels: final.labels,
    user: final.user,
    entrypoint: final.entrypoint,
    stages: timings,
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Every path under `directory`, relative to it, with its lstat. */
async function walk(directory: string, prefix = ''): Promise<Array<{ path: string; mode: number; kind: 'file' | 'directory' | 'other' }>> {
  const entries: Array<{ path: string; mode: number; kind: 'file' | 'directory' | 'other' }> = [];
  for (const name of (await readdir(directory)).sort()) {
    const path = prefix === '' ? name : `${prefix}/${name}`;
    const info = await lstat(join(directory, name));
    const kind = info.isDirectory() ? 'directory' : info.isFile() ? 'file' : 'other';
    entries.push({ path, mode: info.mode, kind });
    if (kind === 'directory') entries.push(...(await walk(join(directory, name), path)));
  }
  return entries;
}

/** What the final stage holds, checked: the failures name every offending path. */
export interface ImageContents {
  /** Paths outside node_modules, e.g. `dist/cli/main.js`. */
  readonly appFiles: readonly string[];
  /** Installed packages (package-lock.json entries present). */
  readonly packages: number;
  /** Each problem found, one sentence each; empty when the image is as it should be. */
  readonly problems: readonly string[];
}

/** Inspects the final stage's WORKDIR (see the file comment for the rules). */
export async function inspectImage(image: BuiltImage): Promise<ImageContents> {
  const problems: string[] = [];
  const entries = await walk(image.appDirectory);
  const appEntries = entries.filter((entry) => entry.path !== 'node_modules' && !entry.path.startsWith('node_modules/'));
  const appFiles = appEntries.filter((entry) => entry.kind === 'file').map((entry) => entry.path);
  for (const path of appEntries.map((entry) => entry.path)) {
    if (path.split('/').some((segment) => segment === 'test' || segment === 'bench')) problems.push(`${path}: test or bench code in the image`);
    else if (/\.[cm]?ts$/.test(path)) problems.push(`${path}: TypeScript source in the image`);
  }
  // The image's files belong to root: USER node reads them through the bits for others.
  for (const entry of entries) {
    const needed = entry.kind === 'directory' ? 0o005 : entry.kind === 'file' ? 0o004 : 0;
    if ((entry.mode & needed) !== needed) problems.push(`${entry.path}: mode ${(entry.mode & 0o777).toString(8)} is not readable by USER ${image.user}`);
  }

  const lock = JSON.parse(await readFile(join(image.appDirectory, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  let packages = 0;
  const devInstalled: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || !existsSync(join(image.appDirectory, path))) continue;
    if (entry.dev === true) devInstalled.push(path);
    else packages++;
  }
  // A whole dev tree installed would be a hundred lines: the first ten say enough.
  problems.push(...devInstalled.slice(0, 10).map((path) => `${path}: a development dependency is installed`));
  if (devInstalled.length > 10) problems.push(`... and ${devInstalled.length - 10} more development dependencies`);
  // Node resolves a bare import in every node_modules from the file's folder up to /: one above
  // the WORKDIR would let the CLI find packages the image does not have.
  for (let directory = dirname(image.appDirectory); ; directory = dirname(directory)) {
    if (existsSync(join(directory, 'node_modules'))) problems.push(`${join(directory, 'node_modules')}: a node_modules above the WORKDIR would hide a missing package`);
    if (directory === dirname(directory)) break;
  }
  return { appFiles, packages, problems };
}

/** How the CLI ran and what it printed. */
export interface CliRun {
  readonly args: readonly string[];
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly summary: Record<string, unknown> | undefined;
}

/** Runs the ENTRYPOINT with `args`, as the container would. */
type Container = (args: readonly string[], env?: Record<string, string | undefined>) => Promise<CliRun>;

/**
 * Starts containers of `image`: the ENTRYPOINT from the WORKDIR, PATH = the stage's bin, the
 * stage's ENV, HOME and TMPDIR of the image, plus `env`; as `identity` when given.
 */
function container(image: BuiltImage, identity: { uid: number; gid: number } | undefined): Container {
  const stageRoot = image.stageRoot;
  const [program, ...entryArgs] = image.entrypoint;
  // Absolute paths in the ENTRYPOINT are container paths.
  const mapped = entryArgs.map((arg) => (arg.startsWith('/') ? join(stageRoot, arg) : arg));
  return async (args, env = {}) => {
    const childEnv: NodeJS.ProcessEnv = {
      PATH: `${join(stageRoot, 'usr/local/bin')}:${IMAGE_PATH}`,
      HOME: join(stageRoot, 'home/node'),
      TMPDIR: join(stageRoot, 'tmp'),
      ...Object.fromEntries(image.env),
    };
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined) delete childEnv[name];
      else childEnv[name] = value;
    }
    // Without a slash, spawn looks the program up on the child's PATH, as the container would.
    const child = spawn(program!, [...mapped, ...args], {
      cwd: image.appDirectory,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(identity === undefined ? {} : identity),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolvePromise, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode) => resolvePromise(exitCode));
    });
    let summary: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(stdout.trimEnd().split('\n').pop() ?? '');
      summary = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
    } catch {
      summary = undefined;
    }
    return { args, code, stdout, stderr, summary };
  };
}

/** A failed expectation about a container run, with what it printed. */
function failed(run: CliRun, expectation: string): Error {
  const tail = (text: string): string => text.trimEnd().split('\n').slice(-15).join('\n');
  return new Error(
    `audit-export ${run.args.join(' ')}: ${expectation}; exit code ${run.code}\n--- stdout\n${tail(run.stdout)}\n--- stderr\n${tail(run.stderr)}`,
  );
}

function expectExit(run: CliRun, code: number, expectation: string): CliRun {
  if (run.code !== code) throw failed(run, `expected exit ${code}: ${expectation}`);
  return run;
}

/** Makes `directory`'s tree read-only (`writable` false) or writable again for its owner. */
async function setWritable(directory: string, writable: boolean): Promise<void> {
  const entries = await walk(directory);
  const paths = [{ path: '', mode: (await lstat(directory)).mode, kind: 'directory' as const }, ...entries];
  // Children before parents on the way back, parents before children on the way in.
  for (const entry of writable ? paths : paths.reverse()) {
    if (entry.kind === 'other') continue;
    const mode = entry.mode & 0o7777;
    await chmod(join(directory, entry.path), writable ? mode | 0o200 : mode & ~0o222);
  }
}

/** Every directory from `path` up to / lets other users through (a non-root USER must reach the image). */
function traversable(path: string): string | undefined {
  for (let directory = path; ; directory = dirname(directory)) {
    if ((statSync(directory).mode & 0o001) === 0) return directory;
    if (directory === dirname(directory)) return undefined;
  }
}

/** What the runs established, for the summary. */
export interface RunReport {
  readonly ranAs: string;
  /** Each command run, its exit code, and for a failure the CLI's one-line reason. */
  readonly commands: ReadonlyArray<{ readonly args: readonly string[]; readonly code: number | null; readonly error?: string }>;
}

/** Runs the image's CLI against `databaseUrl` and checks each result (see the file comment). */
export async function runImage(image: BuiltImage, databaseUrl: string): Promise<RunReport> {
  const stageRoot = image.stageRoot;
  const user = image.user ?? 'root';
  const identity = /^\d+(:\d+)?$/.test(user) ? { uid: Number(user.split(':')[0]), gid: Number(user.split(':')[1] ?? user.split(':')[0]) } : IMAGE_USERS[user];
  if (identity === undefined) throw new Error(`USER ${user}: unknown to the base image stand-in (known: ${Object.keys(IMAGE_USERS).join(', ')}, or uid[:gid])`);
  if (identity.uid === 0) throw new Error('the final stage runs as root: set USER to a non-root user (node)');

  // Where exports go: a writable folder outside the image, as a mounted volume would be.
  const exportsDirectory = join(image.root, 'exports');
  await mkdir(exportsDirectory);
  const asRoot = process.getuid?.() === 0;
  let ranAs: string;
  let run: Container;
  if (asRoot) {
    const blocked = traversable(stageRoot);
    if (blocked !== undefined) throw new Error(`${blocked} does not let other users through: set TMPDIR to a folder every user can reach, such as /tmp`);
    await chown(exportsDirectory, identity.uid, identity.gid);
    await chown(join(stageRoot, 'home/node'), identity.uid, identity.gid);
    ranAs = `uid ${identity.uid} gid ${identity.gid} (USER ${user}); the image's files belong to root`;
    run = container(image, identity);
  } else {
    // Without root, run as this user and take away the write bits, which is what root ownership
    // does to USER node in the image.
    await setWritable(image.appDirectory, false);
    ranAs = `uid ${process.getuid?.()} (not root, so not USER ${user}: the WORKDIR was made read-only instead)`;
    run = container(image, undefined);
  }
  const commands: Array<{ args: readonly string[]; code: number | null; error?: string }> = [];
  const record = async (args: readonly string[], env: Record<string, string | undefined> = {}): Promise<CliRun> => {
    log(`container: audit-export ${args.join(' ')}`);
    const result = await run(args, env);
    const error = result.stderr.split('\n').find((line) => line.startsWith('audit-export: '));
    commands.push({ args, code: result.code, ...(result.code !== 0 && error !== undefined ? { error } : {}) });
    return result;
  };
  try {
    const database = { DATABASE_URL: databaseUrl };
    const help = expectExit(await record(['--help']), 0, 'help');
    for (const command of ['run', 'worker', 'mailer', 'backfill']) {
      if (!new RegExp(`^\\s+${command}\\b`, 'm').test(help.stdout)) throw failed(help, `the help does not list the Cloud Run job command ${command}`);
      expectExit(await record([command, '--help']), 0, `${command} --help`);
    }

    expectExit(await record(['db', 'migrate'], database), 0, 'migrates the source and state tables');
    const seeded = expectExit(await record(['db', 'seed', '--merchants', '2', '--messages', '600', '--seed', '7'], database), 0, 'seeds');
    const merchant = seeded.summary?.firstMerchantId;
    if (typeof merchant !== 'number') throw failed(seeded, 'expected a seed summary with firstMerchantId');

    const range = ['--from', '2026-09-01', '--to', '2026-10-31'];
    const exportArgs = ['export', 'conversations', '--merchant', String(merchant), ...range, '--no-progress'];
    const exported = expectExit(await record([...exportArgs, '--out', `file://${exportsDirectory}`], database), 0, 'exports');
    const summary = exported.summary ?? {};
    if (summary.kind !== 'conversations' || typeof summary.rows !== 'number' || summary.rows <= 0 || typeof summary.uri !== 'string') {
      throw failed(exported, 'expected a conversations summary with rows');
    }
    const zipPath = fileURLToPath(summary.uri);
    if (dirname(zipPath) !== exportsDirectory || !existsSync(zipPath) || statSync(zipPath).size !== summary.bytes) {
      throw failed(exported, `expected the zip of ${summary.bytes} bytes in ${exportsDirectory}`);
    }
    const zipHead = (await readFile(zipPath)).subarray(0, 4).toString('latin1');
    if (zipHead !== 'PK\x03\x04') throw failed(exported, `${zipPath} is not a zip`);

    const requestId = `docker-build-steps-${randomUUID()}`;
    const request = JSON.stringify({ kind: 'conversations', merchantId: merchant, from: '2026-09-01', to: '2026-10-31', requestId });
    const ran = expectExit(
      await record(['run', '--no-progress'], { ...database, EXPORT_REQUEST: request, OUTPUT_URI: `file://${join(exportsDirectory, 'requests')}` }),
      0,
      'runs the request',
    );
    if (ran.summary?.requestId !== requestId || ran.summary?.status !== 'uploaded' || ran.summary?.rows !== summary.rows) {
      throw failed(ran, `expected status uploaded and the export's ${summary.rows} rows`);
    }

    const backfilled = expectExit(
      await record(['backfill', '--from', '2026-09-01', '--to', '2026-10-01', '--merchant', String(merchant), '--out', `file://${join(exportsDirectory, 'backfill')}`, '--no-progress'], database),
      0,
      'backfills one unit',
    );
    if (backfilled.summary?.kind !== 'backfill' || backfilled.summary?.done !== 1) throw failed(backfilled, 'expected one unit done');

    // The default --out is ./exports, inside the WORKDIR that USER cannot write: refused before any work.
    const readOnly = expectExit(await record(exportArgs, database), 2, 'the WORKDIR is not writable');
    if (!/EACCES|permission denied/i.test(readOnly.stderr)) throw failed(readOnly, 'expected a permission error on ./exports');

    // The embedded PostgreSQL is a dev dependency: without DATABASE_URL, a clear message.
    const noDatabase = expectExit(await record([...exportArgs, '--out', `file://${exportsDirectory}`], { DATABASE_URL: undefined }), 1, 'no DATABASE_URL');
    if (!noDatabase.stderr.includes('set DATABASE_URL') || /ERR_MODULE_NOT_FOUND|Cannot find (package|module)/.test(noDatabase.stderr)) {
      throw failed(noDatabase, 'expected the message that says to set DATABASE_URL, not a module error');
    }
  } finally {
    if (!asRoot) await setWritable(image.appDirectory, true);
  }
  return { ranAs, commands };
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { dockerfile: { type: 'string' }, keep: { type: 'boolean', default: false } },
    strict: true,
  });
  const databaseUrl = process.env.DATABASE_URL;
  if (databaseUrl === undefined || databaseUrl === '') throw new Error('DATABASE_URL is not set: name a test database the built CLI may migrate and seed');
  const dockerfile = resolve(values.dockerfile ?? fileURLToPath(new URL('../Dockerfile', import.meta.url)));
  const context = dirname(dockerfile);
  const stages = parseDockerfile(await readFile(dockerfile, 'utf8'));

  // Docker builds with umask 022; the readability check must not depend on this shell's.
  process.umask(0o022);
  const root = await mkdtemp(join(tmpdir(), 'audit-export-image-'));
  // mkdtemp gives 0700: a non-root USER must reach the stage inside, as in the image.
  await chmod(root, 0o755);
  const started = performance.now();
  let ok = false;
  try {
    const image = await buildStages(stages, root, context, join(root, 'npm-cache'));
    const built = performance.now();
    const contents = await inspectImage(image);
    if (contents.problems.length > 0) throw new Error(`the image is not as it should be:\n  ${contents.problems.join('\n  ')}`);
    const report = await runImage(image, databaseUrl);
    const total = performance.now();
    process.stdout.write(
      `${JSON.stringify({
        dockerfile,
        stages: image.stages.map(({ name, seconds }) => ({ name, seconds })),
        workdir: image.workdir,
        user: image.user,
        entrypoint: image.entrypoint,
        labels: Object.fromEntries(image.labels),
        env: Object.fromEntries(image.env),
        appFiles: contents.appFiles.length,
        topLevel: [...new Set(contents.appFiles.map((path) => path.split('/')[0]))],
        packages: contents.packages,
        ranAs: report.ranAs,
        commands: report.commands,
        seconds: { build: round((built - started) / 1000), run: round((total - built) / 1000), total: round((total - started) / 1000) },
        ...(values.keep ? { kept: root } : {}),
      })}\n`,
    );
    ok = true;
    return 0;
  } finally {
    if (values.keep) log(`kept ${root}${ok ? '' : ' (failed)'}`);
    else await rm(root, { recursive: true, force: true });
  }
}

// import.meta.main is Node 24's; the comparison serves older ones, where it is undefined.
if (import.meta.main ?? process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`docker-build-steps: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
