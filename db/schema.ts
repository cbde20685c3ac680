/**
 * The chat platform's tables: the contract the export reads. Every statement is idempotent, so
 * `db migrate` may run any number of times, also concurrently (see {@link migrate}).
 */
export const SOURCE_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS merchants (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  timezone text NOT NULL DEFAULT 'America/Bogota'
);

CREATE TABLE IF NOT EXISTS contacts (
  id bigint PRIMARY KEY,
  merchant_id bigint NOT NULL REFERENCES merchants (id),
  identification text,
  name text,
  email text,
  phone_number text,
  mobile_number text
);

CREATE TABLE IF NOT EXISTS agents (
  id bigint PRIMARY KEY,
  merchant_id bigint NOT NULL REFERENCES merchants (id),
  name text NOT NULL,
  username text NOT NULL,
  email text
);

CREATE TABLE IF NOT EXISTS bots (
  id bigint PRIMARY KEY,
  merchant_id bigint NOT NULL REFERENCES merchants (id),
  name text NOT NULL
);

CREATE TABLE IF NOT EXISTS bot_slots (
  id bigint PRIMARY KEY,
  bot_id bigint NOT NULL REFERENCES bots (id),
  name text NOT NULL,
  text text
);

CREATE TABLE IF NOT EXISTS chats (
  id bigint PRIMARY KEY,
  merchant_id bigint NOT NULL REFERENCES merchants (id),
  provider text NOT NULL,
  alias text,
  contact_id bigint NOT NULL REFERENCES contacts (id),
  agent_id bigint REFERENCES agents (id),
  bot_id bigint REFERENCES bots (id),
  status text NOT NULL CHECK (status IN ('OPENED', 'PICKED_UP', 'CLOSED')),
  created_at timestamptz NOT NULL,
  opened_at timestamptz,
  picked_up_at timestamptz,
  closed_at timestamptz
);

CREATE TABLE IF NOT EXISTS messages (
  id bigint PRIMARY KEY,
  chat_id bigint NOT NULL REFERENCES chats (id),
  created_at timestamptz NOT NULL,
  sender text NOT NULL CHECK (sender IN ('contact', 'agent', 'bot')),
  type text NOT NULL CHECK (type IN ('text', 'audio', 'image', 'file', 'video', 'sticker', 'location')),
  body text,
  media_url text,
  caption text,
  bot_slot_id bigint REFERENCES bot_slots (id)
);

-- The export selects a merchant's chats by creation time, then walks each chat's messages in order.
CREATE INDEX IF NOT EXISTS chats_merchant_created_idx ON chats (merchant_id, created_at, id);
CREATE INDEX IF NOT EXISTS messages_chat_created_idx ON messages (chat_id, created_at, id);
-- The stop-slots report finds each chat's last bot message. Bot messages usually open a chat, so a
-- backward walk of the index above passes every later contact and agent message first; this partial
-- index makes it one probe. Measured on 200,000 chats of 30 messages (3 from the bot): 826 ms and
-- 1.58 M buffers without it, 153 ms and 0.21 M buffers with it.
CREATE INDEX IF NOT EXISTS messages_chat_bot_created_idx ON messages (chat_id, created_at, id) WHERE sender = 'bot';
`;
