import { describe, expect, it } from 'vitest';
import { emulatorBinary, startPubSubEmulator } from './support/pubsub-emulator.js';

describe('the Pub/Sub emulator helper', () => {
  it('says how to install the emulator when it is missing', () => {
    expect(() => emulatorBinary({ PUBSUB_EMULATOR_BIN: '/nonexistent/cloud-pubsub-emulator' })).toThrow(
      /not installed \(no executable \/nonexistent\/cloud-pubsub-emulator\): install it with `apt-get install google-cloud-cli-pubsub-emulator`.*gcloud components install pubsub-emulator/,
    );
  });

  it('starts an emulator that answers, with a project of its own, and stop leaves nothing listening', async () => {
    const first = await startPubSubEmulator();
    const second = await startPubSubEmulator();
    try {
      expect(first.host).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(first.host).not.toBe(second.host);
      expect(first.projectId).not.toBe(second.projectId);
      expect((await fetch(`http://${first.host}/`)).status).toBe(200);
    } finally {
      await second.stop();
      await first.stop();
    }
    await expect(fetch(`http://${first.host}/`)).rejects.toThrow();
    await first.stop(); // Idempotent.
  });
});
