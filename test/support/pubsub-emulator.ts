import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CreateSubscriptionOptions, PubSub, Subscription, Topic } from '@google-cloud/pubsub';
import { freePort } from '../../db/embedded.js';

// Tests talk to the emulator only. Should anything fall back to Application Default Credentials,
// this makes google-auth-library fail at once instead of probing the GCE metadata server.
process.env.METADATA_SERVER_DETECTION = 'none';

/** Where Debian's `google-cloud-cli-pubsub-emulator` package installs the emulator's launcher. */
export const DEFAULT_EMULATOR_BINARY = '/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator';

// A small heap and the quick JIT are plenty for a test's few messages; the defaults would size the
// heap from the machine's memory (a quarter of it) and spend a core on C2 compilation at start-up.
const JAVA_TOOL_OPTIONS = '-Xmx256m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1';

// Runs the emulator ("$0" "$@") in place of a shell that first leaves a watcher on its stdin, a
// pipe from this process: when this process dies, however it dies (SIGTERM and SIGKILL run no
// 'exit' handler), the pipe reaches end of file and the watcher stops the JVM. The JVM keeps the
// shell's pid ($$), so the child's pid and exit are the JVM's.
const WATCHDOG = [
  'exec 3<&0',
  '( read -r _ <&3; kill -TERM $$ 2>/dev/null ) </dev/null &',
  'exec 3<&-',
  'exec "$0" "$@" </dev/null',
].join('\n');

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;

/** A Pub/Sub emulator started by this process for one test file, stopped with {@link PubSubEmulator.stop}. */
export interface PubSubEmulator {
  /** `127.0.0.1:PORT`: the value for `PUBSUB_EMULATOR_HOST`. */
  readonly host: string;
  /** A project id unique to this emulator, so runs never see each other's topics. */
  readonly projectId: string;
  /** Milliseconds from spawning the JVM to its first answered request. */
  readonly startMs: number;
  /** Stops the JVM and everything it started. Idempotent. */
  stop(): Promise<void>;
}

/** The emulator launcher to run: `PUBSUB_EMULATOR_BIN` or Debian's install location. */
export function emulatorBinary(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.PUBSUB_EMULATOR_BIN;
  const binary = configured !== undefined && configured !== '' ? configured : DEFAULT_EMULATOR_BINARY;
  try {
    accessSync(binary, constants.X_OK);
  } catch {
    throw new Error(
      `The Pub/Sub emulator is not installed (no executable ${binary}): install it with ` +
        '`apt-get install google-cloud-cli-pubsub-emulator` (Google Cloud CLI apt repository; it needs a Java 11+ ' +
        'runtime such as openjdk-17-jre-headless) or `gcloud components install pubsub-emulator`, or set ' +
        'PUBSUB_EMULATOR_BIN to its bin/cloud-pubsub-emulator',
    );
  }
  return binary;
}

/**
 * Starts the official Pub/Sub emulator on a free loopback port and waits until it answers. The JVM
 * runs in its own process group, which {@link PubSubEmulator.stop} (or this process's exit) kills,
 * so no emulator outlives the test run. Throws, never skips, when the emulator is missing.
 */
export async function startPubSubEmulator(): Promise<PubSubEmulator> {
  const binary = emulatorBinary();
  // The port is free when asked for but could be taken before the JVM binds it: try another then.
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    try {
      return await launch(binary, port);
    } catch (error) {
      if (attempt >= 3 || !(error instanceof PortTakenError)) throw error;
    }
  }
}

class PortTakenError extends Error {}

async function launch(binary: string, port: number): Promise<PubSubEmulator> {
  const started = performance.now();
  const child = spawn('/bin/sh', ['-c', WATCHDOG, binary, '--host=127.0.0.1', `--port=${port}`], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, JAVA_TOOL_OPTIONS },
  });
  // Keep the tail of its output for error messages; the emulator logs every request at INFO.
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? code ?? 'unknown'));
    child.once('error', (error) => resolve(error.message));
  });

  const kill = (signal: NodeJS.Signals): void => {
    try {
      // Negative pid: the whole process group (the JVM, the watcher, anything the JVM forks).
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  const onExit = (): void => kill('SIGKILL');
  process.once('exit', onExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    kill('SIGTERM');
    const timer = sleep(STOP_TIMEOUT_MS, 'timeout' as const);
    if ((await Promise.race([exited, timer])) === 'timeout') {
      kill('SIGKILL');
      await exited;
    }
  };

  try {
    await waitUntilReady(port, child, exited, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    host: `127.0.0.1:${port}`,
    projectId: `audit-export-test-${randomBytes(5).toString('hex')}`,
    startMs: Math.round(performance.now() - started),
    stop,
  };
}

async function waitUntilReady(
  port: number,
  child: ChildProcess,
  exited: Promise<number | string>,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let gone: number | string | undefined;
  void exited.then((status) => {
    gone = status;
  });
  while (Date.now() < deadline) {
    if (gone !== undefined) {
      const tail = output();
      if (/Address already in use|BindException/.test(tail)) throw new PortTakenError(`port ${port} was taken`);
      throw new Error(`The Pub/Sub emulator (pid ${child.pid}) exited (${gone}) before answering:\n${tail}`);
    }
    try {
      // Its HTTP front answers `GET /` with "Ok" once the gRPC server is up.
      const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  throw new Error(`The Pub/Sub emulator did not answer on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms:\n${output()}`);
}

/**
 * Creates a topic and a subscription on it, as infrastructure would (production code never
 * creates either). `options` go to the subscription: `ackDeadlineSeconds`, `pushConfig`,
 * `retryPolicy`...
 */
export async function createTopicAndSubscription(
  pubsub: PubSub,
  topicName: string,
  subscriptionName: string,
  options: CreateSubscriptionOptions = {},
): Promise<{ topic: Topic; subscription: Subscription }> {
  const [topic] = await pubsub.createTopic(topicName);
  const [subscription] = await topic.createSubscription(subscriptionName, options);
  return { topic, subscription };
}

/** A name unique within the run, for topics and subscriptions (3 to 255 characters, starting with a letter). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
