import { StringDecoder } from 'node:string_decoder';

/**
 * The longest line kept whole, in UTF-16 code units (about 64 MB of ASCII). A longer one
 * is cut there: the part read so far becomes a line of its own and reading goes on, so a
 * runaway line cannot take all memory.
 * @default 64 * 1024 * 1024
 */
export const MAX_LINE_LENGTH = 64 * 1024 * 1024;

/**
 * Turns a terminal's byte stream into lines: UTF-8 is decoded across chunk boundaries,
 * a line ends at `\n`, the terminal's `\r` before it is dropped, and a partial last line is
 * kept until its newline or {@link end}.
 */
export class LineReader {
  readonly #decoder = new StringDecoder('utf8');
  readonly #maxLineLength: number;
  #partial = '';

  constructor(options: { maxLineLength?: number } = {}) {
    this.#maxLineLength = options.maxLineLength ?? MAX_LINE_LENGTH;
  }

  /** Feeds a chunk; returns the lines it completes. */
  push(chunk: Buffer): string[] {
    return this.#split(this.#decoder.write(chunk));
  }

  /** The end of the stream: returns the lines still held (the partial last one). */
  end(): string[] {
    const lines = this.#split(this.#decoder.end());
    if (this.#partial !== '') lines.push(stripCarriageReturn(this.#partial));
    this.#partial = '';
    return lines;
  }

  #split(text: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
      const piece = text.slice(start, newline);
      lines.push(stripCarriageReturn(this.#partial === '' ? piece : this.#partial + piece));
      this.#partial = '';
      start = newline + 1;
    }
    if (start < text.length) {
      this.#partial += text.slice(start);
      if (this.#partial.length > this.#maxLineLength) {
        lines.push(this.#partial);
        this.#partial = '';
      }
    }
    return lines;
  }
}

function stripCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
