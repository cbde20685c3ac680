/**
 * Decides which file (part) of a split CSV each row goes to: at most `rowsPerFile` data rows per
 * part, breaking only between chats. A chat larger than the limit starts a new part and fills
 * whole parts; the next chat may continue its last part. Pure state, no I/O.
 */
export class PartPlanner {
  readonly rowsPerFile: number;
  #part = 0;
  #rowsInPart = 0;
  #chat: string | undefined;

  constructor(rowsPerFile: number) {
    if (!Number.isSafeInteger(rowsPerFile) || rowsPerFile < 1) {
      throw new TypeError(`Expected \`rowsPerFile\` to be a whole number from 1 and up, got ${rowsPerFile}`);
    }
    this.rowsPerFile = rowsPerFile;
  }

  /**
   * Places the next row and returns its part's index, counting from 0.
   * @param chatId the row's chat; rows of one chat must come together.
   * @param chatRows how many rows the chat has in all, known when its first row arrives.
   */
  place(chatId: string, chatRows: number): number {
    if (chatId !== this.#chat) {
      this.#chat = chatId;
      if (this.#rowsInPart > 0 && this.#rowsInPart + chatRows > this.rowsPerFile) this.#startPart();
    } else if (this.#rowsInPart === this.rowsPerFile) {
      this.#startPart();
    }
    this.#rowsInPart += 1;
    return this.#part;
  }

  /**
   * Places a whole chat of `chatRows` rows at once, as {@link place} would row by row, and returns
   * the index of the last part it touches. Planning an export needs only chat sizes, not rows.
   */
  placeChat(chatId: string, chatRows: number): number {
    if (!Number.isSafeInteger(chatRows) || chatRows < 1) {
      throw new TypeError(`Expected \`chatRows\` to be a whole number from 1 and up, got ${chatRows}`);
    }
    this.place(chatId, chatRows);
    const rest = chatRows - 1;
    const room = this.rowsPerFile - this.#rowsInPart;
    if (rest <= room) {
      this.#rowsInPart += rest;
      return this.#part;
    }
    const overflow = rest - room;
    const moreParts = Math.ceil(overflow / this.rowsPerFile);
    this.#part += moreParts;
    this.#rowsInPart = overflow - (moreParts - 1) * this.rowsPerFile;
    return this.#part;
  }

  #startPart(): void {
    this.#part += 1;
    this.#rowsInPart = 0;
  }
}

/**
 * The file name of part `index` (from 0): `base.csv` when the export has a single part, else
 * `base-part-001.csv`, `base-part-002.csv`, ... in export order, so that names sort as they were written.
 */
export function partFileName(base: string, index: number, multipart: boolean): string {
  if (!multipart) return `${base}.csv`;
  return `${base}-part-${String(index + 1).padStart(3, '0')}.csv`;
}
