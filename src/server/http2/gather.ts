/**
 * Bytes that arrive in pieces, gathered into one buffer.
 *
 * A piece read off a socket (a DATA payload, a CONTINUATION's part of a
 * header block) is a view into the whole read that carried it. Keeping the
 * views would keep every such read — hundreds of times the bytes wanted
 * when a client sends them a byte a frame — and a Buffer object a piece.
 * So each piece is copied into one buffer, doubled when full but never
 * past `cap`: the caller refuses whatever would go past it first.
 */
export class Gathered {
  private buf = Buffer.alloc(0);
  private used = 0;

  constructor(private readonly cap: number) {}

  /** Bytes gathered so far. */
  get length(): number {
    return this.used;
  }

  /** The bytes gathered, as one buffer (a view: valid until the next add). */
  get bytes(): Buffer {
    return this.buf.subarray(0, this.used);
  }

  /** Copy `piece` in; the caller has checked that it fits under the cap. */
  add(piece: Buffer): void {
    const need = this.used + piece.length;
    if (need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(Math.max(2 * this.buf.length, need), this.cap));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    piece.copy(this.buf, this.used);
    this.used = need;
  }
}
