/**
 * Pure generators of the synthetic chat data: options and id offsets in, rows out, lazily. Nothing
 * here touches a database, a clock or global state, so every table can be generated again, in any
 * order, and always gives the same rows; `seed.ts` streams them into PostgreSQL.
 *
 * Memory stays constant: each merchant's shape is recomputed from its own random streams whenever
 * a table needs it, and each chat's timeline from the chat's own stream, so no table is held.
 */
import {
  AGENT_SHOWCASE,
  AGENT_PHRASES,
  BOT_NAMES,
  BOT_PHRASES,
  CONTACT_PHRASES,
  CONTACT_SHOWCASE,
  EMAIL_DOMAINS,
  FIRST_NAMES,
  LAST_NAMES,
  MEDIA_EXTENSIONS,
  MERCHANT_NAMES,
  MESSAGE_SHOWCASE,
  PHONE_SHAPES,
  PLACES,
  type MessageContent,
  type MessageType,
  type Provider,
  SLOT_TEMPLATES,
  TIMEZONES,
  TRICKY_CONTENTS,
} from './seed-catalogue.js';
import { type Random, randomFor } from './seed-random.js';

/** Seed options with every default applied and every value checked (see `resolveSeedOptions`). */
export interface ResolvedSeedOptions {
  readonly merchants: number;
  readonly messages: number;
  readonly seed: number;
  readonly startDate: string;
  readonly days: number;
}

/** The largest id already used in each table; generated ids continue after it. */
export interface IdOffsets {
  readonly merchants: number;
  readonly contacts: number;
  readonly agents: number;
  readonly bots: number;
  readonly botSlots: number;
  readonly chats: number;
  readonly messages: number;
}

/** Offsets of an empty database: ids start at 1. */
export const EMPTY_DATABASE: IdOffsets = {
  merchants: 0,
  contacts: 0,
  agents: 0,
  bots: 0,
  botSlots: 0,
  chats: 0,
  messages: 0,
};

/** Microseconds, the resolution of PostgreSQL timestamps; all times here are µs since 1970 UTC. */
export const SECOND = 1_000_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
/** A day in microseconds. */
export const DAY = 24 * HOUR;

/** Everything the generators need: the options, the id offsets and the time window. */
export interface SeedPlan {
  readonly options: ResolvedSeedOptions;
  readonly after: IdOffsets;
  /** First instant of every timestamp: `startDate` 12:00 UTC, which is `startDate` 00:00 at UTC-12. */
  readonly windowStart: number;
  /**
   * Exclusive end of every timestamp: `startDate + days - 1` 12:00 UTC, which is `startDate + days`
   * 00:00 at UTC+12. So all data lies in the local dates [startDate, startDate + days) of every zone
   * from UTC-12 to UTC+12.
   */
  readonly windowEnd: number;
}

/** Combines checked options with the database's current ids; see {@link SeedPlan}. */
export function createSeedPlan(options: ResolvedSeedOptions, after: IdOffsets = EMPTY_DATABASE): SeedPlan {
  const [year, month, day] = options.startDate.split('-').map(Number);
  if (year === undefined || month === undefined || day === undefined) {
    throw new TypeError(`Expected \`startDate\` as YYYY-MM-DD, got ${JSON.stringify(options.startDate)}`);
  }
  const windowStart = Date.UTC(year, month - 1, day, 12) * 1000;
  return { options, after, windowStart, windowEnd: windowStart + (options.days - 1) * DAY };
}

/** A row of `merchants`. */
export interface MerchantRow {
  readonly id: number;
  readonly name: string;
  readonly timezone: string;
}

/** A row of `contacts`. */
export interface ContactRow {
  readonly id: number;
  readonly merchantId: number;
  readonly identification: string | null;
  readonly name: string | null;
  readonly email: string | null;
  readonly phoneNumber: string | null;
  readonly mobileNumber: string | null;
}

/** A row of `agents`. */
export interface AgentRow {
  readonly id: number;
  readonly merchantId: number;
  readonly name: string;
  readonly username: string;
  readonly email: string | null;
}

/** A row of `bots`. */
export interface BotRow {
  readonly id: number;
  readonly merchantId: number;
  readonly name: string;
}

/** A row of `bot_slots`. */
export interface BotSlotRow {
  readonly id: number;
  readonly botId: number;
  readonly name: string;
  readonly text: string | null;
}

/** Values of `chats.status`. */
export type ChatStatus = 'OPENED' | 'PICKED_UP' | 'CLOSED';

/** A row of `chats`; times in µs since 1970 UTC. */
export interface ChatRow {
  readonly id: number;
  readonly merchantId: number;
  readonly provider: Provider;
  readonly alias: string | null;
  readonly contactId: number;
  readonly agentId: number | null;
  readonly botId: number | null;
  readonly status: ChatStatus;
  readonly createdAt: number;
  readonly openedAt: number | null;
  readonly pickedUpAt: number | null;
  readonly closedAt: number | null;
}

/** Values of `messages.sender`. */
export type Sender = 'contact' | 'agent' | 'bot';

/** A row of `messages`; `createdAt` in µs since 1970 UTC. */
export interface MessageRow {
  readonly id: number;
  readonly chatId: number;
  readonly createdAt: number;
  readonly sender: Sender;
  readonly type: MessageType;
  readonly body: string | null;
  readonly mediaUrl: string | null;
  readonly caption: string | null;
  readonly botSlotId: number | null;
}

// Independent random streams per merchant; changing how one is consumed leaves the others intact.
const STREAM_CHAT_SIZES = 1;
const STREAM_MERCHANT = 2;
const STREAM_CONTACTS = 3;
const STREAM_AGENTS = 4;
const STREAM_CHAT = 5;
const STREAM_CONTENT = 6;

/** Reads a list element that must exist; the lists here are constants, so a miss is a bug. */
function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new RangeError(`No element ${index} in a list of ${items.length}`);
  return item;
}

/**
 * Every eleventh merchant from the third on (positions 2, 12, 22, ...) gets no messages: its chats
 * exist but are all empty, so an export of it has no rows. The others share the messages evenly.
 */
export function isSilentMerchant(index: number): boolean {
  return index >= 2 && (index - 2) % 10 === 0;
}

function silentMerchantsBefore(count: number): number {
  return count <= 2 ? 0 : Math.floor((count - 3) / 10) + 1;
}

/** Scripted chats: `c` contact, `b` bot answering from a slot, `n` bot without slot, `a` agent. */
interface ShowcaseChat {
  readonly provider: Provider;
  readonly status: ChatStatus;
  /** A fixed alias, NULL included; undefined draws one as for other chats. */
  readonly alias?: string | null;
  /** Position of the agent within the merchant, or null for no agent. */
  readonly agent: number | null;
  /** Position of the bot within the merchant, or null for no bot. */
  readonly bot: number | null;
  readonly openedAtNull?: boolean;
  readonly script: string;
  /** The message at this position comes more than a day after the previous one. */
  readonly longGapBefore?: number;
  /** The message at this position has the same `created_at` as the previous one. */
  readonly tieAt?: number;
  /** The message at this position gets a `.999999` fraction. */
  readonly ninesAt?: number;
  /** The chat's `created_at` gets a `.999999` fraction. */
  readonly createdAtNines?: boolean;
  /** The whole chat, from creation to closing, lasts less than a second. */
  readonly blink?: boolean;
  /** Created at the window's first instant, or closed at its last. */
  readonly anchor?: 'start' | 'end';
}

/**
 * Each merchant's first chats, so that every case the export must handle exists in every merchant
 * with enough messages (58 for all of them) and in any seed: statuses, providers, NULL alias,
 * no agent, bot-only, NULL opened_at, a chat over a day long with a tie, one under a second, an
 * empty chat, and chats touching both ends of the time window.
 */
const SHOWCASE_CHATS: readonly ShowcaseChat[] = [
  {
    provider: 'whatsapp',
    status: 'CLOSED',
    agent: 0,
    bot: 0,
    script: 'cbcbcnbc' + 'ac'.repeat(16),
    longGapBefore: 20,
    tieAt: 5,
    ninesAt: 4,
    anchor: 'start',
  },
  { provider: 'facebook', status: 'CLOSED', agent: null, bot: 0, script: 'cb', blink: true },
  { provider: 'instagram', status: 'OPENED', alias: null, agent: null, bot: null, openedAtNull: true, script: 'ccc' },
  { provider: 'telegram', status: 'PICKED_UP', agent: 1, bot: 0, script: 'cnbcac', createdAtNines: true },
  { provider: 'web', status: 'CLOSED', agent: null, bot: null, script: '' },
  { provider: 'whatsapp', status: 'CLOSED', agent: 2, bot: null, script: 'caca', anchor: 'end' },
  { provider: 'web', status: 'OPENED', alias: '=1+2', agent: null, bot: 0, script: 'bcb' },
];

/** A merchant with at least this many messages has all its scripted chats in full. */
export const SHOWCASE_MESSAGES = SHOWCASE_CHATS.reduce((sum, chat) => sum + chat.script.length, 0);

/** Skewed: about half the chats have 1-5 messages, one in twenty has 36-60, a few have none. */
function drawChatSize(random: Random): number {
  const r = random.next();
  if (r < 0.03) return 0;
  if (r < 0.5) return random.int(1, 5);
  if (r < 0.8) return random.int(6, 15);
  if (r < 0.95) return random.int(16, 35);
  return random.int(36, 60);
}

/**
 * The message counts of one merchant's chats, in chat order, summing exactly to `quota`. The
 * showcase chats come first (with their scripts cut short when the quota runs out).
 */
export function* chatSizes(plan: SeedPlan, merchantIndex: number, quota: number): Generator<number> {
  const random = randomFor(plan.options.seed, merchantIndex, STREAM_CHAT_SIZES);
  let remaining = quota;
  for (let k = 0; remaining > 0 || k < SHOWCASE_CHATS.length; k += 1) {
    const wanted = k < SHOWCASE_CHATS.length ? at(SHOWCASE_CHATS, k).script.length : drawChatSize(random);
    const size = Math.min(wanted, remaining);
    remaining -= size;
    yield size;
  }
}

/** How big one merchant's share of the seed is and where its ids start. */
export interface MerchantLayout {
  /** Position of the merchant within this seed, from 0: the key of its random streams. */
  readonly index: number;
  readonly id: number;
  /** Exactly this many messages belong to the merchant. */
  readonly quota: number;
  readonly chatCount: number;
  readonly contactCount: number;
  readonly agentCount: number;
  /** Slots of each of the merchant's bots; its length is the number of bots. */
  readonly slotCounts: readonly number[];
  readonly firstContactId: number;
  readonly firstAgentId: number;
  readonly firstBotId: number;
  /** Id of the first slot of each bot. */
  readonly firstSlotIds: readonly number[];
  readonly firstChatId: number;
  readonly firstMessageId: number;
}

/** The layout of every merchant, in order; each is computed from the merchant's own streams. */
export function* merchantLayouts(plan: SeedPlan): Generator<MerchantLayout> {
  const { merchants, messages, seed } = plan.options;
  const active = merchants - silentMerchantsBefore(merchants);
  const share = Math.floor(messages / active);
  const extra = messages % active;
  let activeSoFar = 0;
  let contactId = plan.after.contacts + 1;
  let agentId = plan.after.agents + 1;
  let botId = plan.after.bots + 1;
  let slotId = plan.after.botSlots + 1;
  let chatId = plan.after.chats + 1;
  let messageId = plan.after.messages + 1;
  for (let index = 0; index < merchants; index += 1) {
    let quota = 0;
    if (!isSilentMerchant(index)) {
      quota = share + (activeSoFar < extra ? 1 : 0);
      activeSoFar += 1;
    }
    let chatCount = 0;
    for (const _size of chatSizes(plan, index, quota)) chatCount += 1;
    const random = randomFor(seed, index, STREAM_MERCHANT);
    const slotCounts: number[] = [];
    const firstSlotIds: number[] = [];
    const bots = random.int(1, 2);
    let slotsSoFar = 0;
    for (let b = 0; b < bots; b += 1) {
      const count = random.int(3, 6);
      slotCounts.push(count);
      firstSlotIds.push(slotId + slotsSoFar);
      slotsSoFar += count;
    }
    const layout: MerchantLayout = {
      index,
      id: plan.after.merchants + 1 + index,
      quota,
      chatCount,
      // Enough for the showcase contacts; about five chats for every three contacts beyond that.
      contactCount: Math.max(CONTACT_SHOWCASE.name.length, Math.ceil(chatCount * 0.6)),
      agentCount: Math.min(60, AGENT_SHOWCASE.length + Math.floor(chatCount / 300)),
      slotCounts,
      firstContactId: contactId,
      firstAgentId: agentId,
      firstBotId: botId,
      firstSlotIds,
      firstChatId: chatId,
      firstMessageId: messageId,
    };
    yield layout;
    contactId += layout.contactCount;
    agentId += layout.agentCount;
    botId += bots;
    slotId += slotsSoFar;
    chatId += chatCount;
    messageId += quota;
  }
}

/** Rows of `merchants`. */
export function* merchantRows(plan: SeedPlan): Generator<MerchantRow> {
  for (let index = 0; index < plan.options.merchants; index += 1) {
    const base = at(MERCHANT_NAMES, index % MERCHANT_NAMES.length);
    yield {
      id: plan.after.merchants + 1 + index,
      name: index < MERCHANT_NAMES.length ? base : `${base} #${index + 1}`,
      timezone: at(TIMEZONES, index % TIMEZONES.length),
    };
  }
}

/** Strips accents and anything else that does not belong in the local part of an e-mail address. */
function asciiHandle(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '');
}

function fillDigits(random: Random, shape: string): string {
  let text = '';
  for (const character of shape) text += character === '#' ? String(random.int(0, 9)) : character;
  return text;
}

const JUNK_PHONES = ['=1+2', 'call me', '', 'no tengo', '-', '+', '0'] as const;

function drawPhone(random: Random): string | null {
  const r = random.next();
  if (r < 0.1) return null;
  if (r < 0.13) return random.pick(JUNK_PHONES);
  return fillDigits(random, random.pick(PHONE_SHAPES));
}

/** Rows of `contacts`: each merchant's first contacts carry the showcase values. */
export function* contactRows(plan: SeedPlan): Generator<ContactRow> {
  const showcase = CONTACT_SHOWCASE;
  for (const layout of merchantLayouts(plan)) {
    const random = randomFor(plan.options.seed, layout.index, STREAM_CONTACTS);
    for (let i = 0; i < layout.contactCount; i += 1) {
      const id = layout.firstContactId + i;
      if (i < showcase.name.length) {
        yield {
          id,
          merchantId: layout.id,
          identification: at(showcase.identification, i),
          name: at(showcase.name, i),
          email: at(showcase.email, i),
          phoneNumber: at(showcase.phone, i),
          // Shifted, so a junk phone number often sits next to a good mobile number and vice versa.
          mobileNumber: at(showcase.phone, (i + 5) % showcase.phone.length),
        };
        continue;
      }
      const first = random.pick(FIRST_NAMES);
      const last = random.chance(0.4) ? `${random.pick(LAST_NAMES)} ${random.pick(LAST_NAMES)}` : random.pick(LAST_NAMES);
      const r = random.next();
      yield {
        id,
        merchantId: layout.id,
        identification: r < 0.05 ? null : r < 0.07 ? `00${random.digits(8)}` : random.digits(random.int(7, 10)),
        name: random.chance(0.03) ? null : `${first} ${last}`,
        email: random.chance(0.15)
          ? null
          : `${asciiHandle(first)}.${asciiHandle(last)}${random.int(1, 999)}@${random.pick(EMAIL_DOMAINS)}`,
        phoneNumber: drawPhone(random),
        mobileNumber: drawPhone(random),
      };
    }
  }
}

/** Rows of `agents`: each merchant's first agents carry the showcase values (NULL and empty e-mail). */
export function* agentRows(plan: SeedPlan): Generator<AgentRow> {
  for (const layout of merchantLayouts(plan)) {
    const random = randomFor(plan.options.seed, layout.index, STREAM_AGENTS);
    for (let i = 0; i < layout.agentCount; i += 1) {
      const id = layout.firstAgentId + i;
      if (i < AGENT_SHOWCASE.length) {
        yield { id, merchantId: layout.id, ...at(AGENT_SHOWCASE, i) };
        continue;
      }
      const first = random.pick(FIRST_NAMES);
      const last = random.pick(LAST_NAMES);
      const username = `${asciiHandle(first)}.${asciiHandle(last)}${i}`;
      yield {
        id,
        merchantId: layout.id,
        name: `${first} ${last}`,
        username,
        email: random.chance(0.12) ? null : `${username}@example.com`,
      };
    }
  }
}

/** Rows of `bots`: one or two per merchant. */
export function* botRows(plan: SeedPlan): Generator<BotRow> {
  for (const layout of merchantLayouts(plan)) {
    for (let b = 0; b < layout.slotCounts.length; b += 1) {
      yield {
        id: layout.firstBotId + b,
        merchantId: layout.id,
        name: at(BOT_NAMES, (layout.index + b) % BOT_NAMES.length),
      };
    }
  }
}

function slotTemplate(bot: number, slot: number): (typeof SLOT_TEMPLATES)[number] {
  return at(SLOT_TEMPLATES, (slot + 3 * bot) % SLOT_TEMPLATES.length);
}

/** Rows of `bot_slots`: three to six per bot, multi-paragraph texts, the hand-over slot without text. */
export function* botSlotRows(plan: SeedPlan): Generator<BotSlotRow> {
  for (const layout of merchantLayouts(plan)) {
    for (let b = 0; b < layout.slotCounts.length; b += 1) {
      const count = at(layout.slotCounts, b);
      const first = at(layout.firstSlotIds, b);
      for (let s = 0; s < count; s += 1) {
        const template = slotTemplate(b, s);
        yield { id: first + s, botId: layout.firstBotId + b, name: template.name, text: template.text };
      }
    }
  }
}

/** A message of a planned chat, before its content is chosen. */
export interface PlannedMessage {
  readonly createdAt: number;
  readonly sender: Sender;
  /** For bot messages: the slot's position within its bot, or null for a message without slot. */
  readonly slot: number | null;
}

/** A chat row together with the times and senders of its messages. */
export interface ChatPlan {
  readonly row: ChatRow;
  /** Position of the chat within its merchant: the key of its random streams. */
  readonly index: number;
  /** Position of the chat's bot within the merchant, or null. */
  readonly bot: number | null;
  readonly messages: readonly PlannedMessage[];
}

const PROVIDER_WEIGHTS: readonly (readonly [Provider, number])[] = [
  ['whatsapp', 0.55],
  ['facebook', 0.15],
  ['instagram', 0.15],
  ['telegram', 0.05],
  ['web', 0.1],
];

function drawProvider(random: Random): Provider {
  let r = random.next();
  for (const [provider, weight] of PROVIDER_WEIGHTS) {
    if (r < weight) return provider;
    r -= weight;
  }
  return 'whatsapp';
}

const JUNK_ALIASES = ['=1+2', '-', '+', '@', ' ', '""'] as const;

function drawAlias(random: Random, provider: Provider): string | null {
  const r = random.next();
  if (r < 0.08) return null;
  if (r < 0.09) return random.pick(JUNK_ALIASES);
  switch (provider) {
    case 'whatsapp':
      return fillDigits(random, random.pick(PHONE_SHAPES));
    case 'instagram':
    case 'telegram':
      return `@${asciiHandle(random.pick(FIRST_NAMES))}_${random.digits(3)}`;
    case 'facebook':
      return `${random.pick(FIRST_NAMES)} ${random.pick(LAST_NAMES)}`;
    case 'web':
      return `Visitante ${random.digits(4)}`;
  }
}

type Script = { sender: Sender; withSlot: boolean }[];

function parseScript(script: string): Script {
  return [...script].map((code) => {
    switch (code) {
      case 'c':
        return { sender: 'contact', withSlot: false };
      case 'a':
        return { sender: 'agent', withSlot: false };
      case 'b':
        return { sender: 'bot', withSlot: true };
      case 'n':
        return { sender: 'bot', withSlot: false };
      default:
        throw new RangeError(`Unknown showcase script code ${JSON.stringify(code)}`);
    }
  });
}

/**
 * Who writes each message: a bot phase (contact and bot alternating, roughly), then, once an agent
 * picks the chat up, an agent phase. Bots write only in bot chats, agents only in chats with one.
 */
function drawSenders(random: Random, size: number, hasBot: boolean, hasAgent: boolean): Script {
  let lead = size;
  if (hasAgent) lead = Math.min(size, hasBot ? random.int(1, Math.max(1, Math.ceil(size / 2))) : random.int(1, 3));
  const script: Script = [];
  let previous: Sender = 'contact';
  for (let i = 0; i < size; i += 1) {
    let sender: Sender;
    if (i < lead) {
      if (!hasBot) sender = 'contact';
      else if (i === 0) sender = random.chance(0.2) ? 'bot' : 'contact';
      else if (previous === 'contact') sender = random.chance(0.8) ? 'bot' : 'contact';
      else sender = random.chance(0.75) ? 'contact' : 'bot';
    } else if (i === lead) sender = 'agent';
    else if (previous === 'agent') sender = random.chance(0.6) ? 'contact' : 'agent';
    else sender = random.chance(0.75) ? 'agent' : 'contact';
    script.push({ sender, withSlot: sender === 'bot' && random.chance(0.85) });
    previous = sender;
  }
  return script;
}

// Reply delays: equally likely ranges of growing width, so replies cluster at a few seconds with a
// long tail (roughly log-uniform). Integer arithmetic only, so no libm difference can change the data.
const REPLY_DELAYS: readonly (readonly [number, number])[] = [
  [2 * SECOND, 5 * SECOND],
  [5 * SECOND, 15 * SECOND],
  [15 * SECOND, MINUTE],
  [MINUTE, 3 * MINUTE],
  [3 * MINUTE, 10 * MINUTE],
];

/** A pause between two messages: mostly seconds to minutes, sometimes hours. */
function drawGap(random: Random): number {
  if (random.chance(0.02)) return random.int(HOUR, 20 * HOUR);
  const [low, high] = random.pick(REPLY_DELAYS);
  return random.int(low, high);
}

/** Moves a time forward to `.999999` of its second (2 %) or to the next whole second (1 %). */
function roundOddly(random: Random, time: number): number {
  const r = random.next();
  if (r < 0.02) return time - (time % SECOND) + (SECOND - 1);
  if (r < 0.03) return time - (time % SECOND) + SECOND;
  return time;
}

/**
 * Plans one chat: its row and its messages' times and senders, from the chat's own random stream.
 * Called by both the chats and the messages pass, which therefore agree without sharing memory.
 */
export function planChat(plan: SeedPlan, layout: MerchantLayout, index: number, size: number): ChatPlan {
  const random = randomFor(plan.options.seed, layout.index, STREAM_CHAT, index);
  const spec = index < SHOWCASE_CHATS.length ? at(SHOWCASE_CHATS, index) : undefined;
  const botCount = layout.slotCounts.length;

  let provider: Provider;
  let status: ChatStatus;
  let bot: number | null;
  let agent: number | null;
  let alias: string | null;
  let contact: number;
  let openedAtNull: boolean;
  let blink: boolean;
  let longGapBefore: number | undefined;
  let script: Script;
  if (spec !== undefined) {
    provider = spec.provider;
    status = spec.status;
    bot = spec.bot === null ? null : spec.bot % botCount;
    agent = spec.agent === null ? null : spec.agent % layout.agentCount;
    alias = spec.alias === undefined ? drawAlias(random, provider) : spec.alias;
    contact = index % layout.contactCount;
    openedAtNull = spec.openedAtNull === true;
    blink = spec.blink === true;
    longGapBefore = spec.longGapBefore;
    script = parseScript(spec.script.slice(0, size));
  } else {
    provider = drawProvider(random);
    const r = random.next();
    status = r < 0.07 ? 'OPENED' : r < 0.15 ? 'PICKED_UP' : 'CLOSED';
    bot = random.chance(0.4) ? random.int(0, botCount - 1) : null;
    const hasAgent =
      status === 'PICKED_UP' || (status === 'CLOSED' && random.chance(bot === null ? 0.85 : 0.6));
    agent = hasAgent ? random.int(0, layout.agentCount - 1) : null;
    alias = drawAlias(random, provider);
    contact = random.int(0, layout.contactCount - 1);
    openedAtNull = random.chance(0.04);
    blink = size <= 2 && random.chance(0.05);
    longGapBefore = size >= 3 && random.chance(0.03) ? random.int(1, size - 1) : undefined;
    script = drawSenders(random, size, bot !== null, agent !== null);
  }

  const { windowStart, windowEnd } = plan;
  const windowLength = windowEnd - windowStart;
  // Chats are spread evenly over the window in id order, each at a random point of its own stretch.
  let createdAt =
    spec?.anchor === 'start'
      ? windowStart
      : Math.min(windowEnd - 1, windowStart + Math.floor(windowLength * ((index + random.next()) / layout.chatCount)));
  if (spec?.createdAtNines === true) createdAt = createdAt - (createdAt % SECOND) + (SECOND - 1);
  else if (!blink && spec?.anchor === undefined) createdAt = roundOddly(random, createdAt);
  let openedAt: number | null = openedAtNull
    ? null
    : createdAt + (blink ? random.int(0, 50_000) : random.int(0, 3 * SECOND));
  let time = (openedAt ?? createdAt) + (blink ? random.int(1, 100_000) : random.int(0, 30 * SECOND));
  let pickedUpAt: number | null = null;
  const times: number[] = [];
  for (let i = 0; i < script.length; i += 1) {
    const tie = spec?.tieAt === i || (spec === undefined && i > 0 && random.chance(0.02));
    if (i > 0 && !tie) {
      if (blink) time += random.int(1, 150_000);
      else if (longGapBefore === i) time += random.int(DAY + HOUR, DAY + 16 * HOUR);
      // Bots answer within seconds; people take their time.
      else if (at(script, i).sender === 'bot') time += random.int(300_000, 3 * SECOND);
      else time += drawGap(random);
    }
    if (at(script, i).sender === 'agent' && pickedUpAt === null) {
      pickedUpAt = time + (blink ? random.int(1, 50_000) : random.int(10 * SECOND, 20 * MINUTE));
      time = pickedUpAt + (blink ? random.int(0, 50_000) : random.int(SECOND, 40 * SECOND));
    }
    if (spec?.ninesAt === i) time = time - (time % SECOND) + (SECOND - 1);
    else if (!blink && !tie) time = roundOddly(random, time);
    times.push(time);
  }
  const lastMessageAt = times.length > 0 ? at(times, times.length - 1) : (openedAt ?? createdAt);
  if (agent !== null && pickedUpAt === null) {
    // An agent took the chat but has not written (yet).
    pickedUpAt = lastMessageAt + (blink ? random.int(1, 50_000) : random.int(10 * SECOND, 20 * MINUTE));
  }
  let closedAt: number | null = null;
  if (status === 'CLOSED') {
    const after = Math.max(lastMessageAt, pickedUpAt ?? 0);
    // Mostly closed by the agent within minutes; some closed automatically hours later.
    const delay = blink
      ? random.int(1, 100_000)
      : random.chance(0.1)
        ? random.int(HOUR, 3 * HOUR)
        : random.int(SECOND, 15 * MINUTE);
    closedAt = blink ? after + delay : roundOddly(random, after + delay);
  }

  // Fit the chat into the window: move it back by whole seconds (keeping the fractions), and only
  // if it is longer than the whole window, squeeze it.
  const lastAt = Math.max(closedAt ?? 0, pickedUpAt ?? 0, lastMessageAt);
  let shift = 0;
  if (spec?.anchor === 'end') shift = lastAt - (windowEnd - 1);
  else if (lastAt > windowEnd - 1) shift = Math.ceil((lastAt - (windowEnd - 1)) / SECOND) * SECOND;
  let place = (t: number): number => t - shift;
  if (createdAt - shift < windowStart) {
    const origin = createdAt;
    const factor = (windowLength - 2) / (lastAt - origin);
    place = (t) => windowStart + Math.floor((t - origin) * factor);
  }
  createdAt = place(createdAt);
  openedAt = openedAt === null ? null : place(openedAt);
  pickedUpAt = pickedUpAt === null ? null : place(pickedUpAt);
  const placed = times.map(place);
  if (closedAt !== null) {
    // Squeezing can merge close times; the chat must still close strictly after its last message.
    closedAt = Math.max(place(closedAt), placed.length > 0 ? at(placed, placed.length - 1) + 1 : 0);
  }

  const messages: PlannedMessage[] = placed.map((createdAtOfMessage, i) => {
    const { sender, withSlot } = at(script, i);
    const slot = withSlot && bot !== null ? random.int(0, at(layout.slotCounts, bot) - 1) : null;
    return { createdAt: createdAtOfMessage, sender, slot };
  });

  return {
    index,
    bot,
    messages,
    row: {
      id: layout.firstChatId + index,
      merchantId: layout.id,
      provider,
      alias,
      contactId: layout.firstContactId + contact,
      agentId: agent === null ? null : layout.firstAgentId + agent,
      botId: bot === null ? null : layout.firstBotId + bot,
      status,
      createdAt,
      openedAt,
      pickedUpAt,
      closedAt,
    },
  };
}

/** Plans of one merchant's chats, in id order. */
export function* chatPlans(plan: SeedPlan, layout: MerchantLayout): Generator<ChatPlan> {
  let index = 0;
  for (const size of chatSizes(plan, layout.index, layout.quota)) {
    yield planChat(plan, layout, index, size);
    index += 1;
  }
}

/** Rows of `chats`. */
export function* chatRows(plan: SeedPlan): Generator<ChatRow> {
  for (const layout of merchantLayouts(plan)) {
    for (const chat of chatPlans(plan, layout)) yield chat.row;
  }
}

const MESSAGE_TYPE_WEIGHTS: readonly (readonly [MessageType, number])[] = [
  ['text', 0.72],
  ['image', 0.09],
  ['audio', 0.06],
  ['sticker', 0.04],
  ['file', 0.04],
  ['video', 0.03],
  ['location', 0.02],
];

function drawMessageType(random: Random): MessageType {
  let r = random.next();
  for (const [type, weight] of MESSAGE_TYPE_WEIGHTS) {
    if (r < weight) return type;
    r -= weight;
  }
  return 'text';
}

const CAPTIONS = ['Foto del producto', 'Así llegó 😞', 'Comprobante de pago', 'Mira, este es el modelo'] as const;

function drawSentence(random: Random, phrases: readonly string[]): string {
  let text = random.pick(phrases);
  const extra = random.chance(0.3) ? random.int(1, 2) : 0;
  for (let i = 0; i < extra; i += 1) text += (random.chance(0.15) ? '\n' : ' ') + random.pick(phrases);
  return text;
}

function drawContent(random: Random, sender: Sender, slotText: string | null | undefined): MessageContent {
  if (random.chance(0.02)) return random.pick(TRICKY_CONTENTS);
  if (sender === 'bot') {
    if (slotText !== undefined) return { type: 'text', body: slotText ?? random.pick(BOT_PHRASES), caption: null };
    return random.chance(0.9)
      ? { type: 'text', body: random.pick(BOT_PHRASES), caption: null }
      : { type: 'image', body: null, caption: random.pick(CAPTIONS) };
  }
  const type = drawMessageType(random);
  switch (type) {
    case 'text': {
      const r = random.next();
      const body =
        r < 0.005 ? '' : r < 0.01 ? null : drawSentence(random, sender === 'agent' ? AGENT_PHRASES : CONTACT_PHRASES);
      return { type, body, caption: null };
    }
    case 'image':
    case 'video':
      return { type, body: null, caption: random.chance(0.3) ? random.pick(CAPTIONS) : null };
    case 'file':
      return { type, body: null, caption: random.chance(0.5) ? `factura_${random.digits(4)}.pdf` : null };
    case 'location':
      return { type, body: random.chance(0.7) ? random.pick(PLACES).name : null, caption: null };
    case 'audio':
    case 'sticker':
      return { type, body: null, caption: null };
  }
}

function mediaUrl(random: Random, type: MessageType): string | null {
  if (type === 'text') return null;
  if (type === 'location') {
    const place = random.pick(PLACES);
    return `https://maps.example.com/?q=${place.lat},${place.lon}`;
  }
  return `https://cdn.example.com/${type}/${random.hex(16)}.${random.pick(MEDIA_EXTENSIONS[type])}`;
}

/**
 * Rows of `messages`, chat by chat in time order (so ids follow time within a chat, ties included).
 * The seed's first messages take the {@link MESSAGE_SHOWCASE} contents in order, whoever sends them.
 */
export function* messageRows(plan: SeedPlan): Generator<MessageRow> {
  let seedPosition = 0;
  for (const layout of merchantLayouts(plan)) {
    let id = layout.firstMessageId;
    for (const chat of chatPlans(plan, layout)) {
      if (chat.messages.length === 0) continue;
      const random = randomFor(plan.options.seed, layout.index, STREAM_CONTENT, chat.index);
      for (const message of chat.messages) {
        let slotText: string | null | undefined;
        let botSlotId: number | null = null;
        if (message.slot !== null && chat.bot !== null) {
          slotText = slotTemplate(chat.bot, message.slot).text;
          botSlotId = at(layout.firstSlotIds, chat.bot) + message.slot;
        }
        const content =
          seedPosition < MESSAGE_SHOWCASE.length
            ? at(MESSAGE_SHOWCASE, seedPosition)
            : drawContent(random, message.sender, slotText);
        yield {
          id,
          chatId: chat.row.id,
          createdAt: message.createdAt,
          sender: message.sender,
          type: content.type,
          body: content.body,
          mediaUrl: mediaUrl(random, content.type),
          caption: content.caption,
          botSlotId,
        };
        id += 1;
        seedPosition += 1;
      }
    }
  }
}
