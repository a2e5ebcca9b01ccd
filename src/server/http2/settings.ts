/**
 * SETTINGS, both ways (RFC 9113 §6.5): what we tell the client, and what
 * the client tells us about what we send.
 *
 * Each side opens with a SETTINGS frame, a list of (parameter, value)
 * pairs, and may send more later; each is ACKed. A setting binds the side
 * that receives it: ours bound the client, the client's bound us.
 *
 * What we advertise, and why:
 *   - MAX_CONCURRENT_STREAMS 256: a bound on the calls one client holds
 *     open (each may buffer a request of up to the gRPC message limit);
 *     a client that opens more has them refused (REFUSED_STREAM), which
 *     gRPC clients retry. The sidecars' workers stay well below it. It
 *     bounds as well the calls still running on a connection, their
 *     streams open or not (read-gate.ts).
 *   - INITIAL_WINDOW_SIZE 1 MiB, and the connection's window raised to
 *     1 MiB: a request of a few MiB streams in without waiting for a
 *     WINDOW_UPDATE every 64 KiB. We read DATA as it comes, so the window
 *     is given back once half of it is used.
 *   - MAX_HEADER_LIST_SIZE 64 KiB, as node:http2 had: gRPC metadata is
 *     small. A larger request is answered HTTP 431, unread.
 *   - HEADER_TABLE_SIZE and MAX_FRAME_SIZE at their defaults (4096, 16 KiB).
 *
 * What the client's settings change: INITIAL_WINDOW_SIZE moves every open
 * stream's window by the difference; MAX_FRAME_SIZE is the largest frame
 * we may send; a smaller HEADER_TABLE_SIZE must be acknowledged in our next
 * header block. The rest ask nothing of a server that opens no streams and
 * sends small headers.
 */
import { ERROR_CODE, FLAG, frame, frameSizeError, MAX_FRAME, MAX_WINDOW, protocolError, SETTING, settings, TYPE, type H2Error } from "./frames";
import { DEFAULT_WINDOW, type Outbox } from "./outbox";
import type { Stream } from "./stream";

export const MAX_CONCURRENT_STREAMS = 256;
export const INITIAL_WINDOW = 1024 * 1024;
export const MAX_HEADER_LIST_SIZE = 64 * 1024;
export const TABLE_SIZE = 4096;

export const OUR_SETTINGS = settings([
  [SETTING.MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS],
  [SETTING.INITIAL_WINDOW_SIZE, INITIAL_WINDOW],
  [SETTING.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE],
]);
export const SETTINGS_ACK = frame(TYPE.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0));

/** The client's settings as they bear on what we send, applied to the connection's outbox and open streams. */
export class PeerSettings {
  /** The window a new stream of ours starts with. */
  initialWindow = DEFAULT_WINDOW;
  private tableSize = TABLE_SIZE;

  /** A SETTINGS payload (not an ACK): applied in order; the first value RFC 9113 forbids is a connection error. */
  apply(payload: Buffer, outbox: Outbox, streams: Iterable<Stream>): H2Error | void {
    if (payload.length % 6 !== 0) return frameSizeError("SETTINGS", payload.length);
    for (let at = 0; at < payload.length; at += 6) {
      const value = payload.readUInt32BE(at + 2);
      switch (payload.readUInt16BE(at)) {
        case SETTING.HEADER_TABLE_SIZE:
          // We never add to the client's table; a smaller table must still be acknowledged in our next block (RFC 7541 §4.2).
          if (value < this.tableSize) outbox.tableSizeUpdate = Math.min(value, outbox.tableSizeUpdate ?? value);
          this.tableSize = value;
          break;
        case SETTING.ENABLE_PUSH:
          if (value > 1) return protocolError(`ENABLE_PUSH ${value}`);
          break;
        case SETTING.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) return { code: ERROR_CODE.FLOW_CONTROL_ERROR, reason: `INITIAL_WINDOW_SIZE ${value}, past 2^31-1` };
          const delta = value - this.initialWindow;
          for (const s of streams) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) return { code: ERROR_CODE.FLOW_CONTROL_ERROR, reason: `stream ${s.id}'s window past 2^31-1` };
          }
          this.initialWindow = value;
          break;
        }
        case SETTING.MAX_FRAME_SIZE:
          if (value < MAX_FRAME || value > 2 ** 24 - 1) return protocolError(`MAX_FRAME_SIZE ${value}`);
          outbox.maxFrame = value;
          break;
        default:
          break; // MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE: we open no streams, and send small headers
      }
    }
  }
}
