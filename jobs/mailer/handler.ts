/**
 * What the mail step decided about one message: `ack` removes it for good (done, or malformed and
 * reported, which retrying cannot fix), `nack` asks Pub/Sub to deliver it again later.
 */
export type Verdict = 'ack' | 'nack';

/**
 * Handles one Pub/Sub message, however it arrived (streaming pull or push). A handler that throws
 * is treated as `nack`: the message comes back.
 * @param data The message data, as published.
 * @param attributes The message attributes (`kind`, `requestId` for ready announcements).
 * @param messageId The id the server gave the message at publish time; redeliveries keep it.
 */
export type MessageHandler = (data: Buffer, attributes: Record<string, string>, messageId: string) => Promise<Verdict>;

/** True for the two verdicts; anything else a handler returns is a bug, treated as `nack`. */
export function isVerdict(value: unknown): value is Verdict {
  return value === 'ack' || value === 'nack';
}
