/**
 * A growable byte buffer that CSV records are written into, so the export's hot path never builds a
 * JS string per row or per chunk (the young generation's churn and the main thread's largest cost).
 * Large values that need no change can be shared instead of copied ({@link share}): the output is
 * then a list of pieces, handed out together by {@link take}.
 *
 * A consumer that is done with a piece may hand it back ({@link release}): its buffer is then
 * written again instead of a fresh one being allocated. Why: every fresh buffer is external memory
 * to V8, which counts it towards the old generation's limit, so a new 80 KiB buffer per chunk (340
 * MB per 1M rows) forced a full collection about every 6 MB (110 per 1M rows, a fifth of the
 * export's CPU). Pieces never released are simply never reused.
 */
export class ByteOutput {
  /** The bytes written so far end at `buf[pos]`; past `pos` the buffer is scratch. */
  buf: Buffer;
  /** Where the next byte goes in {@link buf}. */
  pos = 0;
  readonly #capacity: number;
  /** Where the bytes of {@link buf} not yet in {@link #pieces} start. */
  #segmentStart = 0;
  /** Output before the current segment: earlier segments and shared values, in order. */
  #pieces: Buffer[] = [];
  #piecesBytes = 0;
  /** Buffers of {@link #capacity} bytes with no piece out, ready to be written again; at most {@link MAX_FREE_BUFFERS}. */
  readonly #free: Buffer[] = [];
  /**
   * The buffers this output allocated, by their memory, with their pieces still out. Weak: a
   * buffer whose pieces were kept and never released is left to the garbage collector.
   */
  readonly #owned = new WeakMap<ArrayBufferLike, OwnedBuffer>();
  /** The state of {@link buf} when this output allocated it, otherwise undefined (a grown buffer). */
  #current: OwnedBuffer | undefined;

  /** @param capacity the size of each fresh buffer; writes past it grow the buffer (one large record). */
  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new TypeError(`Expected \`capacity\` to be a whole number from 1 and up, got ${capacity}`);
    }
    this.#capacity = capacity;
    this.buf = this.#freshBuffer();
  }

  /** How many bytes were written since the last {@link take}. */
  get size(): number {
    return this.#piecesBytes + this.pos - this.#segmentStart;
  }

  /** Makes room for `bytes` more bytes after {@link pos}. */
  ensure(bytes: number): void {
    if (this.pos + bytes > this.buf.length) this.#grow(bytes);
  }

  /** Appends one byte. */
  byte(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  /** Appends a copy of `src[start..end)`. */
  bytes(src: Buffer, start: number, end: number): void {
    const length = end - start;
    this.ensure(length);
    const buf = this.buf;
    let pos = this.pos;
    if (length < 48) {
      // A native copy costs more than a short loop (about 35 ns), and most cells are short.
      for (let i = start; i < end; i++) buf[pos++] = src[i]!;
    } else {
      pos += src.copy(buf, pos, start, end);
    }
    this.pos = pos;
  }

  /**
   * Appends `src[start..end)` without copying it: the output refers to `src`, which must never be
   * written again (COPY input is not). For large values: a megabyte body is then held once, not
   * three times over (input, a grown buffer, the chunk).
   */
  share(src: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.#closeSegment();
    this.#pieces.push(src.subarray(start, end));
    this.#piecesBytes += end - start;
  }

  /** Appends a string as UTF-8 (rare paths: fallbacks and generated text). */
  string(value: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.ensure(value.length * 3);
    this.pos += this.buf.write(value, this.pos, 'utf8');
  }

  /**
   * Hands out the bytes written since the last call, in order, and starts a fresh buffer: the
   * returned bytes are never written again, so a consumer may keep them (the zip holds chunks while
   * it deflates them). Usually one piece; more when values were {@link share}d.
   */
  take(): Buffer[] {
    this.#closeSegment();
    const pieces = this.#pieces;
    this.#pieces = [];
    this.#piecesBytes = 0;
    if (this.#segmentStart > 0 || this.buf.length > this.#capacity) {
      this.#retireCurrent();
      this.buf = this.#freshBuffer();
    }
    this.pos = 0;
    this.#segmentStart = 0;
    return pieces;
  }

  /**
   * Hands back a piece from {@link take} that the consumer no longer reads: once every piece of its
   * buffer is back, the buffer may be written again. Call it at most once per piece, and only when
   * nothing will read the piece again (the zip calls it once deflate has consumed the bytes).
   * Pieces of shared values, copies and grown buffers are ignored.
   */
  release(piece: Buffer): void {
    const owned = this.#owned.get(piece.buffer);
    if (owned === undefined || owned.piecesOut === 0) return;
    owned.piecesOut -= 1;
    if (owned.piecesOut === 0 && owned !== this.#current) this.#recycle(owned);
  }

  /** A buffer of {@link #capacity} bytes: a released one when there is one, otherwise a new one. */
  #freshBuffer(): Buffer {
    const reused = this.#free.pop();
    // Never from Node's shared pool: a pooled buffer's memory is shared, and reuse is keyed by it.
    const buffer = reused ?? Buffer.allocUnsafeSlow(this.#capacity);
    let owned = this.#owned.get(buffer.buffer);
    if (owned === undefined) {
      owned = { buffer, piecesOut: 0 };
      this.#owned.set(buffer.buffer, owned);
    }
    this.#current = owned;
    return buffer;
  }

  /** {@link buf} is about to be replaced: it is free again now if no piece of it is out, otherwise when the last one comes back. */
  #retireCurrent(): void {
    const owned = this.#current;
    this.#current = undefined;
    if (owned !== undefined && owned.piecesOut === 0) this.#recycle(owned);
  }

  #recycle(owned: OwnedBuffer): void {
    if (this.#free.length < MAX_FREE_BUFFERS) this.#free.push(owned.buffer);
    else this.#owned.delete(owned.buffer.buffer);
  }

  /** Moves the bytes written into {@link buf} since the last piece into {@link #pieces}. */
  #closeSegment(): void {
    if (this.pos === this.#segmentStart) return;
    let segment = this.buf.subarray(this.#segmentStart, this.pos);
    // A buffer grown for a large record is up to half empty, and a queue of such chunks would hold
    // that twice over: hand out the data alone (a copy, as rare as such records).
    if (this.buf.length - segment.length > this.#capacity) segment = Buffer.from(segment);
    else if (this.#current !== undefined) this.#current.piecesOut += 1;
    this.#pieces.push(segment);
    this.#piecesBytes += segment.length;
    // Later bytes go after these: what was handed out is never overwritten.
    this.#segmentStart = this.pos;
  }

  #grow(bytes: number): void {
    // Only the current segment moves (earlier pieces keep the old buffer). Room for the rest of a
    // large record too (one growth per large value, not two), and geometric growth for a record of
    // many medium values.
    const segment = this.pos - this.#segmentStart;
    const next = Buffer.allocUnsafe(Math.max(Math.ceil(this.buf.length * 1.5), segment + bytes + this.#capacity));
    this.buf.copy(next, 0, this.#segmentStart, this.pos);
    this.#retireCurrent();
    this.buf = next;
    this.pos = segment;
    this.#segmentStart = 0;
  }
}

/**
 * How many released buffers an output keeps for reuse. A chunk is out from the CSV stage's push to
 * deflate's read: a few at a time (deflate's 512 KiB input buffer, the zip's writable side). More
 * would only hold memory.
 */
const MAX_FREE_BUFFERS = 8;

/** A buffer a {@link ByteOutput} allocated, and how many of the pieces it handed out of it are not back yet. */
interface OwnedBuffer {
  readonly buffer: Buffer;
  piecesOut: number;
}
