/**
 * Seeded pseudo-random numbers for the synthetic data. Pure: no clock, no `Math.random`, no global
 * state, so the same keys give the same numbers on every machine and Node version.
 */

// Murmur3's finaliser: a cheap bijection on 32-bit words that spreads every input bit over the output.
function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const TWO_TO_THE_32 = 0x1_0000_0000;

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Chaotic generator): 128 bits of state, passes PractRand,
 * and needs only 32-bit integer operations, which V8 runs without allocating.
 */
export class Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Starts from four 32-bit words; prefer {@link randomFor}, which derives them from keys. */
  constructor(a: number, b: number, c: number, d: number) {
    this.#a = a >>> 0;
    this.#b = b >>> 0;
    this.#c = c >>> 0;
    this.#d = d >>> 0;
    // sfc32's first outputs are correlated with the seed words; the reference implementation skips them.
    for (let i = 0; i < 12; i += 1) this.uint32();
  }

  /** The next unsigned 32-bit integer. */
  uint32(): number {
    const a = this.#a;
    const b = this.#b;
    const c = this.#c;
    const d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.uint32() / TWO_TO_THE_32;
  }

  /** An integer in [min, max], both inclusive; the bounds must be safe integers with min <= max. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty list, uniformly. */
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new RangeError('Random.pick needs a non-empty list');
    return item;
  }

  /** `digits` decimal digits (each 0-9, so leading zeros happen), as a string. */
  digits(count: number): string {
    let text = '';
    for (let i = 0; i < count; i += 1) text += String(this.uint32() % 10);
    return text;
  }

  /** `count` lowercase hexadecimal digits. */
  hex(count: number): string {
    let text = '';
    while (text.length < count) text += this.uint32().toString(16).padStart(8, '0');
    return text.slice(0, count);
  }
}

/**
 * A generator for one purpose, derived from a list of non-negative safe integers (the user's seed,
 * then e.g. a merchant's position, a stream number, a chat's position). Different key lists give
 * independent streams, so one part of the data can be regenerated without replaying the others.
 */
export function randomFor(...keys: readonly number[]): Random {
  let h = fmix32(0x9e37_79b9 ^ keys.length);
  for (const key of keys) {
    if (!Number.isSafeInteger(key) || key < 0) {
      throw new RangeError(`randomFor keys must be non-negative safe integers, got ${key}`);
    }
    // Both halves, so keys above 2^32 do not collide with their low 32 bits.
    h = fmix32(Math.imul(h ^ (key >>> 0), 0xcc9e_2d51) + 0xe654_6b64);
    h = fmix32(Math.imul(h ^ Math.floor(key / TWO_TO_THE_32), 0x1b87_3593) + 0x85eb_ca6b);
  }
  return new Random(fmix32(h + 0x9e37_79b9), fmix32(h + 0x3c6e_f372), fmix32(h + 0xdaa6_6d2b), fmix32(h + 0x78dd_e6e4));
}
