/**
 * When a connection stops reading its client, and starts again.
 *
 * A server that reads every byte a client sends, and acts on it, gives a
 * hostile client as much of its memory and work as it cares to ask for.
 * HTTP/2's own bounds (flow-control windows, MAX_CONCURRENT_STREAMS) do
 * not cover all of it. The bound that covers everything is the socket's:
 * stop reading, and the kernel's buffers fill, and the client must wait.
 * So the connection holds its reading for as long as any reason holds:
 *   - "backlog": our output the client has not read passed
 *     OUTPUT_HIGH_WATER; released once it has ('drain');
 *   - "busy": MAX_CONCURRENT_STREAMS calls are still running on the
 *     connection, their streams open or not (beginWork); released when
 *     one ends.
 * Held, the socket is paused and the frame reader stops after the frame
 * it is on; the frames after it are kept, and read first when the last
 * hold is released: none is refused or dropped.
 */
import type { Duplex } from "node:stream";
import { MAX_CONCURRENT_STREAMS } from "./settings";

/**
 * Our output the client has not read yet, past which we stop reading it. Most of what we send is
 * bounded by the client's windows, but not the answers to its PINGs, SETTINGS, resets and requests:
 * a client that sends them and never reads would otherwise grow our memory without end (the
 * "ping flood" and "reset flood" of 2019).
 */
export const OUTPUT_HIGH_WATER = 1024 * 1024;

type HoldReason = "backlog" | "busy";

export class ReadGate {
  private readonly holds = new Set<HoldReason>();
  private reopenQueued = false;
  /** Calls whose work has begun and not ended. */
  private working = 0;

  constructor(
    private readonly socket: Duplex,
    /** Stop handing frames on, after the current one. */
    private readonly stop: () => void,
    /** Read the frames kept while held; the gate may be held again by the time it returns. */
    private readonly readKept: () => void,
  ) {}

  /** After a read: the client is not reading what we send, so stop reading it until it has. */
  holdIfBacklogged(): void {
    if (this.socket.writableLength <= OUTPUT_HIGH_WATER || this.holds.has("backlog")) return;
    this.hold("backlog");
    this.socket.once("drain", () => this.release("backlog"));
  }

  /** A call's work began (Http2Connection.beginWork); the function returned ends it, once. */
  beginWork(): () => void {
    if (++this.working >= MAX_CONCURRENT_STREAMS) this.hold("busy");
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.working < MAX_CONCURRENT_STREAMS) this.release("busy");
    };
  }

  private hold(reason: HoldReason): void {
    this.holds.add(reason);
    this.stop();
    this.socket.pause();
  }

  /**
   * Once no reason is left, the kept frames are read, then the socket: a microtask later, so never inside the code that
   * released (a handler's callback, or the very frame handler that held).
   */
  private release(reason: HoldReason): void {
    if (!this.holds.delete(reason) || this.holds.size > 0 || this.reopenQueued) return;
    this.reopenQueued = true;
    queueMicrotask(() => {
      this.reopenQueued = false;
      if (this.holds.size > 0) return;
      this.readKept();
      if (this.holds.size === 0 && !this.socket.destroyed) this.socket.resume();
    });
  }
}
