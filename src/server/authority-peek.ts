/**
 * A connection's first `:authority`, read without an HPACK decoder when it is plain.
 *
 * An HTTP/2 header block (HPACK, RFC 7541) is a row of field
 * representations. Each starts with a byte whose high bits say which kind
 * it is — an index into the table of known fields, a literal value for an
 * indexed name, a literal name and value, a change of the table's size —
 * followed by integers with a prefix of that byte and strings with their
 * length in front, each string either as it is or Huffman-coded.
 *
 * first-request.ts needs one value of the first request: its authority.
 * In a connection's first block the dynamic table is still empty, so
 * `:authority` can only be the static table's entry 1 (empty) or a literal
 * value for that name. Walking the representations needs only their
 * integers and lengths: no table, no Huffman decoding. Clients today send
 * "localhost" over a unix socket, Huffman-coded in 6 bytes, so that code
 * is recognised as it is. Anything else — another Huffman-coded value, a
 * literal name, a reference to the dynamic table, a block cut short — is
 * left to the full decoder (authority.ts, hpack.js), which is then loaded;
 * on a driver no old kubelet talks to, never. That saves about 12 ms of
 * start-up and the decoder's share of memory.
 */

/** "localhost" as HPACK's Huffman code writes it (RFC 7541, appendix B). */
const LOCALHOST_HUFFMAN = Buffer.from("a0e41d139d09", "hex");
/** The static table's last index (RFC 7541, appendix A). */
const STATIC_ENTRIES = 61;
const AUTHORITY_INDEX = 1;

/**
 * The `:authority` of a connection's first header block: its value, `null`
 * when the block has none, or `undefined` when only a full decoder can say.
 */
export function peekFirstAuthority(block: Buffer): string | null | undefined {
  const r = new Reader(block);
  while (r.more()) {
    const b = r.peek();
    if (b & 0x80) {
      // Indexed field: a whole entry of a table.
      const index = r.int(7);
      if (index === undefined || index === 0 || index > STATIC_ENTRIES) return undefined;
      if (index === AUTHORITY_INDEX) return "";
      continue;
    }
    if ((b & 0xe0) === 0x20) {
      // A change of the dynamic table's size.
      if (r.int(5) === undefined) return undefined;
      continue;
    }
    // A literal value, with incremental indexing (01) or without it (0000, 0001).
    const nameIndex = (b & 0xc0) === 0x40 ? r.int(6) : r.int(4);
    if (nameIndex === undefined || nameIndex > STATIC_ENTRIES) return undefined;
    let isAuthority = nameIndex === AUTHORITY_INDEX;
    if (nameIndex === 0) {
      const name = r.string();
      if (name === undefined || name.huffman) return undefined;
      isAuthority = name.bytes.toString("latin1") === ":authority";
    }
    const value = r.string();
    if (value === undefined) return undefined;
    if (!isAuthority) continue;
    if (!value.huffman) return value.bytes.toString("latin1");
    return value.bytes.equals(LOCALHOST_HUFFMAN) ? "localhost" : undefined;
  }
  return null;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  more(): boolean {
    return this.pos < this.buf.length;
  }

  peek(): number {
    return this.buf[this.pos]!;
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1); undefined when cut short or absurdly large. */
  int(prefixBits: number): number | undefined {
    const max = (1 << prefixBits) - 1;
    let value = this.buf[this.pos++]! & max;
    if (value < max) return value;
    for (let shift = 0; shift <= 21; shift += 7) {
      if (this.pos >= this.buf.length) return undefined;
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return value;
    }
    return undefined;
  }

  /** A string literal (RFC 7541 §5.2): its bytes, and whether they are Huffman-coded. */
  string(): { huffman: boolean; bytes: Buffer } | undefined {
    if (!this.more()) return undefined;
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.int(7);
    if (length === undefined || this.pos + length > this.buf.length) return undefined;
    const bytes = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return { huffman, bytes };
  }
}
