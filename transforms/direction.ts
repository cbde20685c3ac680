/** Who sent a message, as stored in `messages.sender`. */
export type Sender = 'contact' | 'agent' | 'bot';

/** The direction columns of a message row. */
export interface MessageDirection {
  /** `true` when the contact sent the message. */
  readonly incoming: boolean;
  /** The content when incoming, else empty. */
  readonly contact: string | null;
  /** The content when outgoing (agent or bot), else empty. */
  readonly agent: string | null;
}

/**
 * Splits a message's content by direction: an incoming message (from the contact) fills
 * `Message Contact`, an outgoing one (agent or bot) `Message Agent`. The content is the body of a
 * text message and the media URL of any other type.
 */
export function splitDirection(
  sender: string,
  type: string,
  body: string | null,
  mediaUrl: string | null,
): MessageDirection {
  const content = type === 'text' ? body : mediaUrl;
  const incoming = sender === 'contact';
  return incoming ? { incoming, contact: content, agent: null } : { incoming, contact: null, agent: content };
}
