/**
 * A growable byte buffer that CSV records are written into, so the export's hot path never builds a
 * JS string per row or per chunk (the young generation's churn and the main thread's largest cost).
 * Large values that need no change can be shared instead of copied ({@link share}): the output is
 * then a list of pieces, handed out together by {@link take}.
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

  /** @param capacity the size of each fresh buffer; writes past it grow the buffer (one large record). */
  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new TypeError(`Expected \`capacity\` to be a whole number from 1 and up, got ${capacity}`);
    }
    this.#capacity = capacity;
    this.buf = Buffer.allocUnsafe(capacity);
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
    if (this.#segmentStart > 0 || this.buf.length > this.#capacity) this.buf = Buffer.allocUnsafe(this.#capacity);
    this.pos = 0;
    this.#segmentStart = 0;
    return pieces;
  }

  /** Moves the bytes written into {@link buf} since the last piece into {@link #pieces}. */
  #closeSegment(): void {
    if (this.pos === this.#segmentStart) return;
    let segment = this.buf.subarray(this.#segmentStart, this.pos);
    // A buffer grown for a large record is up to half empty, and a queue of such chunks would hold
    // that twice over: hand out the data alone (a copy, as rare as such records).
    if (this.buf.length - segment.length > this.#capacity) segment = Buffer.from(segment);
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
    this.buf = next;
    this.pos = segment;
    this.#segmentStart = 0;
  }
}
