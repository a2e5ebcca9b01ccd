/**
 * HPACK's Huffman code (RFC 7541, appendix B), decoding only.
 *
 * HTTP/2 header strings may be sent Huffman-coded: each byte value (and an
 * end-of-string symbol, EOS, 256) has a code of 5 to 30 bits, short ones
 * for the characters headers use most. The code is canonical: listing the
 * symbols by code length, then by value, their codes are consecutive
 * binary numbers, each length's first code being the previous length's
 * last + 1, shifted left by one. So the 257 code lengths below define the
 * whole code (test/unit/hpack.test.ts checks that they give the RFC's
 * codes), and decoding needs three small arrays, not a tree: for each
 * length, its first code, how many symbols have it, and where they start
 * in the sorted list.
 *
 * A coded string ends with 0–7 bits of padding: the high bits of EOS, all
 * ones. Longer padding, padding with a zero bit, or EOS itself are errors
 * (§5.2): a decoder that let them pass would read strings no encoder makes.
 */

/** Code length of each symbol, 0–255 then EOS (RFC 7541, appendix B). */
// prettier-ignore
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;
const MAX_LENGTH = 30;

/** Symbols sorted by (code length, value); for each length its first code, count, and offset into that list. */
const sorted: number[] = [];
const firstCode = new Array<number>(MAX_LENGTH + 1).fill(0);
const countOf = new Array<number>(MAX_LENGTH + 1).fill(0);
const offsetOf = new Array<number>(MAX_LENGTH + 1).fill(0);
{
  for (let len = 1; len <= MAX_LENGTH; len++) {
    offsetOf[len] = sorted.length;
    for (let sym = 0; sym < CODE_LENGTHS.length; sym++) if (CODE_LENGTHS[sym] === len) sorted.push(sym);
    countOf[len] = sorted.length - offsetOf[len]!;
  }
  let code = 0;
  for (let len = 1; len <= MAX_LENGTH; len++) {
    firstCode[len] = code;
    code = (code + countOf[len]!) * 2;
  }
}

/** Every symbol's code, as the canonical construction gives it: [code, length]. For tests and the encoder tests use. */
export function huffmanCodes(): [number, number][] {
  const codes: [number, number][] = [];
  for (let len = 1; len <= MAX_LENGTH; len++) {
    for (let i = 0; i < countOf[len]!; i++) codes[sorted[offsetOf[len]! + i]!] = [firstCode[len]! + i, len];
  }
  return codes;
}

export class HuffmanError extends Error {}

/** Decode a Huffman-coded string; its bytes as a latin1 string (HTTP/2 header values are octets). */
export function huffmanDecode(input: Buffer): string {
  // Every symbol is at least 5 bits: at most 8/5 output bytes per input byte.
  const out = Buffer.allocUnsafe(Math.ceil((input.length * 8) / 5));
  let n = 0;
  let code = 0;
  let len = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const index = code - firstCode[len]!;
      if (index < countOf[len]!) {
        const sym = sorted[offsetOf[len]! + index]!;
        if (sym === EOS) throw new HuffmanError("a Huffman-coded string holds EOS");
        out[n++] = sym;
        code = 0;
        len = 0;
      } else if (len === MAX_LENGTH) {
        throw new HuffmanError("a Huffman-coded string holds a code no symbol has"); // cannot happen: the code is complete
      }
    }
  }
  if (len > 7) throw new HuffmanError(`a Huffman-coded string ends with ${len} bits of padding; at most 7 are allowed`);
  if (code !== 2 ** len - 1) throw new HuffmanError("a Huffman-coded string's padding is not all ones (EOS's first bits)");
  return out.toString("latin1", 0, n);
}
