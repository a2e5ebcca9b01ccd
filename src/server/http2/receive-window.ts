/**
 * Flow control of what the client sends us (RFC 9113 §5.2, §6.9.1).
 *
 * Only DATA counts, its padding included, and against two windows: the
 * connection's and its stream's, each opened to INITIAL_WINDOW
 * (settings.ts). A client that sends past one has broken the protocol:
 * past the connection's it is a connection error, past a stream's that
 * stream is reset (FLOW_CONTROL_ERROR). We read DATA as it comes (the
 * gRPC server keeps a request's body up to the message limit and refuses
 * more), so a window is given back with a WINDOW_UPDATE once half of it
 * is used, not one per DATA frame. The outbox (outbox.ts) keeps the
 * windows the other way.
 */
import { windowUpdate } from "./frames";

export class ReceiveWindow {
  /** Bytes the client may still send. */
  private left: number;
  /** Bytes it sent that we have not given back. */
  private used = 0;

  constructor(private readonly size: number) {
    this.left = size;
  }

  get available(): number {
    return this.left;
  }

  /** DATA of `length` bytes arrived: false, and nothing counted, when it is past the window. */
  take(length: number): boolean {
    if (length > this.left) return false;
    this.left -= length;
    this.used += length;
    return true;
  }

  /** The WINDOW_UPDATE that gives the window back on `streamId` (0: the connection's), once half of it is used. */
  giveBack(streamId: number): Buffer | undefined {
    if (this.used < this.size / 2) return undefined;
    const frame = windowUpdate(streamId, this.used);
    this.left += this.used;
    this.used = 0;
    return frame;
  }

  /** Give nothing more back (a GOAWAY for an error went out). */
  close(): void {
    this.used = 0;
  }
}
