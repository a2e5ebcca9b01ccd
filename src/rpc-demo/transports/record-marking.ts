/**
 * Record marking: where one message ends on a byte stream.
 *
 * TCP delivers a stream of bytes, not messages: one write may arrive split
 * in two reads, or two writes glued into one. So each message is prefixed
 * with its length. ONC RPC (RFC 5531 §11) uses a 4-byte big-endian word per
 * fragment: the top bit says "last fragment of this record", the other 31
 * bits give the fragment's length. A sender can thus stream a big message
 * in pieces without knowing its total size; the reader glues fragments until
 * it sees the last-fragment bit.
 */
import { Code, RpcError } from "../rpc-error";

const LAST_FRAGMENT = 0x80000000;
const MAX_FRAGMENT = 0x7fffffff;

/** The bytes to write for one record, split into fragments of at most maxFragment bytes. */
export function markRecord(record: Buffer, maxFragment = MAX_FRAGMENT): Buffer {
  if (maxFragment < 1 || maxFragment > MAX_FRAGMENT) throw new RangeError(`fragment size ${maxFragment} out of range`);
  const count = Math.max(1, Math.ceil(record.length / maxFragment));
  const out = Buffer.allocUnsafe(record.length + 4 * count);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const part = record.subarray(i * maxFragment, (i + 1) * maxFragment);
    const last = i === count - 1;
    // `|` makes a signed 32-bit number; writeUInt32BE wants it unsigned.
    out.writeUInt32BE(((last ? LAST_FRAGMENT : 0) | part.length) >>> 0, pos);
    part.copy(out, pos + 4);
    pos += 4 + part.length;
  }
  return out;
}


/** Collects stream bytes and hands out whole records. */
export class RecordReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private fragments: Buffer[] = [];
  private recordBytes = 0;

  constructor(private readonly maxRecord = 16 * 1024 * 1024) {}

  /** Feed bytes as they arrive; returns the records they complete. */
  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.pendingBytes < 4) break;
      const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      this.pending = [buf];
      const word = buf.readUInt32BE(0);
      const len = word & MAX_FRAGMENT;
      if (this.recordBytes + len > this.maxRecord) throw new RpcError(Code.RESOURCE_EXHAUSTED, `record larger than ${this.maxRecord} bytes`);
      if (buf.length < 4 + len) break;
      this.fragments.push(buf.subarray(4, 4 + len));
      this.recordBytes += len;
      const rest = buf.subarray(4 + len);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
      if (word & LAST_FRAGMENT) {
        out.push(this.fragments.length === 1 ? this.fragments[0]! : Buffer.concat(this.fragments));
        this.fragments = [];
        this.recordBytes = 0;
      }
    }
    return out;
  }
}
