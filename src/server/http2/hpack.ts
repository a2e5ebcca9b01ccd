/**
 * HPACK (RFC 7541): reading the header blocks an HTTP/2 client sends.
 *
 * A header block is a row of representations. An indexed field (first bit
 * 1) is one number: an entry of the static table (61 fields common to all
 * HTTP, appendix A) or of the dynamic table, which holds fields this
 * connection's client sent before, newest first, from index 62. A literal
 * (01, 0000, 0001) gives a value, and a name either by index or as a
 * string; "01" also adds the field to the dynamic table. Numbers are HPACK
 * integers: a few bits of the first byte, then 7 bits a byte while they do
 * not fit (§5.1). Strings have their length in front and are either plain
 * or Huffman-coded (huffman.ts). A dynamic table size update (001) may
 * open a block and lowers or raises the table's size, up to what we
 * advertised.
 *
 * The dynamic table's size counts each entry as name + value + 32 bytes;
 * adding one past the size evicts the oldest. Its state spans the whole
 * connection, so every block must be decoded, in order, even one whose
 * request is then refused; an error in any block leaves the table unknown,
 * and the connection must end (COMPRESSION_ERROR).
 *
 * We only decode. Our responses are literals "without indexing" and
 * `:status 200` as static entry 8 (frames.ts), which never touch the
 * client's table.
 */
import { huffmanDecode, HuffmanError } from "./huffman";

// prettier-ignore
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"], [":scheme", "http"],
  [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"], [":status", "304"], [":status", "400"],
  [":status", "404"], [":status", "500"], ["accept-charset", ""], ["accept-encoding", "gzip, deflate"], ["accept-language", ""],
  ["accept-ranges", ""], ["accept", ""], ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""],
  ["cache-control", ""], ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""], ["expect", ""],
  ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""], ["if-none-match", ""], ["if-range", ""],
  ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""], ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""],
  ["proxy-authorization", ""], ["range", ""], ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""], ["www-authenticate", ""],
];

/** The bytes an entry counts for in the dynamic table's size (§4.1). */
const ENTRY_OVERHEAD = 32;

export class HpackError extends Error {}

export type HeaderField = [name: string, value: string];

export interface DecodedBlock {
  fields: HeaderField[];
  /** The fields' size (names, values, 32 each) passed the limit: `fields` holds those before it. */
  tooLarge: boolean;
}

export class HpackDecoder {
  /** Newest first: entries[0] is index 62. */
  private readonly entries: HeaderField[] = [];
  private size = 0;
  private maxSize: number;

  /** `limit`: the SETTINGS_HEADER_TABLE_SIZE we advertised, the most a size update may ask for. */
  constructor(private readonly limit = 4096) {
    this.maxSize = limit;
  }

  /** The dynamic table's size in HPACK's count, and its entries newest first (for tests). */
  get tableSize(): number {
    return this.size;
  }
  get table(): readonly HeaderField[] {
    return this.entries;
  }

  /**
   * Decode one whole header block. Fields are collected until their size
   * passes `maxListSize`; the rest is still decoded, for the table's sake.
   * Throws HpackError for a block no encoder makes.
   */
  decode(block: Buffer, maxListSize = Infinity): DecodedBlock {
    const fields: HeaderField[] = [];
    let listSize = 0;
    let tooLarge = false;
    const r = new BlockReader(block);
    let fieldSeen = false;
    while (r.more()) {
      const b = r.peek();
      let field: HeaderField;
      if (b & 0x80) {
        field = this.at(r.int(7));
      } else if ((b & 0xe0) === 0x20) {
        if (fieldSeen) throw new HpackError("a dynamic table size update after a header field (it may only open a block)");
        const size = r.int(5);
        if (size > this.limit) throw new HpackError(`a dynamic table size update to ${size} bytes, past the ${this.limit} we allow`);
        this.maxSize = size;
        this.evict(0);
        continue;
      } else {
        const indexing = (b & 0xc0) === 0x40;
        const nameIndex = r.int(indexing ? 6 : 4);
        const name = nameIndex === 0 ? r.string() : this.at(nameIndex)[0];
        field = [name, r.string()];
        if (indexing) this.add(field);
      }
      fieldSeen = true;
      if (tooLarge) continue;
      listSize += field[0].length + field[1].length + ENTRY_OVERHEAD;
      if (listSize > maxListSize) tooLarge = true;
      else fields.push(field);
    }
    return { fields, tooLarge };
  }

  private at(index: number): HeaderField {
    if (index === 0) throw new HpackError("an indexed field with index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as HeaderField;
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (!entry) throw new HpackError(`index ${index} is past the dynamic table's ${this.entries.length} entries`);
    return entry;
  }

  private add(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD;
    // An entry larger than the whole table empties it and is not kept (§4.4): not an error.
    this.evict(size);
    if (size > this.maxSize) return;
    this.entries.unshift(field);
    this.size += size;
  }

  /** Drop the oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    while (this.entries.length > 0 && this.size + room > this.maxSize) {
      const [name, value] = this.entries.pop()!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}

class BlockReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  more(): boolean {
    return this.pos < this.buf.length;
  }

  peek(): number {
    return this.buf[this.pos]!;
  }

  /** An integer with an N-bit prefix (§5.1). Up to 2^28 + prefix: larger is nothing a sane encoder sends. */
  int(prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = this.buf[this.pos++]! & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      if (shift > 21) throw new HpackError("an integer longer than 4 continuation bytes");
      if (this.pos >= this.buf.length) throw new HpackError("the block ends inside an integer");
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return value;
    }
  }

  /** A string literal (§5.2), plain or Huffman-coded, as latin1. */
  string(): string {
    if (!this.more()) throw new HpackError("the block ends where a string should start");
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.int(7);
    if (this.pos + length > this.buf.length) throw new HpackError(`a string of ${length} bytes runs past the end of the block`);
    const start = this.pos;
    this.pos += length;
    if (!huffman) return this.buf.toString("latin1", start, this.pos);
    try {
      return huffmanDecode(this.buf.subarray(start, this.pos));
    } catch (err) {
      if (err instanceof HuffmanError) throw new HpackError(err.message);
      throw err;
    }
  }
}
