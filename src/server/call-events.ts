/**
 * The driver's calls as a live stream: `GET /events` on the metrics port.
 *
 * Every CSI call the driver finishes becomes one event — service, method,
 * volume, the request's key fields, status code, duration, and the whole
 * request and reply with secrets redacted — sent as Server-Sent Events
 * (`text/event-stream`: "data: {json}\n\n" per event, over one long HTTP
 * response that a browser's EventSource reads). The lab's page draws them
 * as a sequence diagram: a volume's life as the kubelet and the sidecars
 * live it.
 *
 * It must never cost the driver anything it would notice:
 *   - publishing keeps a reference in a ring of the last RING_SIZE calls
 *     and nothing else: no copy, no JSON, no redaction; a request or reply
 *     past 512 KiB is kept as its size only (interceptor.ts), and the key
 *     fields and volume are cut at 1 KiB, as the log cuts them;
 *   - the work happens later (setImmediate), once for all readers, only
 *     while someone is reading, and no more than TURN_BYTES of it in one
 *     turn of the event loop: a call's event is made the first time a
 *     reader needs it, and kept in the ring in place of its record, so
 *     readers that come late share it rather than each making its own;
 *   - a slow reader is never waited for: when more than MAX_BUFFERED bytes
 *     wait in its socket, its events are skipped, and it is told how many
 *     it missed (`event: gap`) when it catches up.
 * A reader that connects gets the ring first (`?since=N` for the calls
 * after sequence number N), so a page opened late still sees the volume's
 * history up to RING_SIZE calls back. The ring may hold RING_SIZE requests
 * and replies of 512 KiB each, so it is given an event at a time, the next
 * once the reader's socket has taken the last (write() returns false, then
 * 'drain'): no copy of the ring is made for a reader, however slow. The ring
 * goes on meanwhile; what it drops before the reader took it is a gap.
 * Then the reader takes the calls as they finish, with everyone else.
 */
import type * as http from "node:http";
import { codeName } from "../csi/errors";
import { cutField, type CallRecord } from "./interceptor";
import { redact } from "./redact";

export const RING_SIZE = 512;
/** Bytes allowed to wait in one reader's socket before its events are skipped. */
export const MAX_BUFFERED = 256 * 1024;
/** Bytes of events made in one turn of the event loop (one event may pass it) before the driver's calls have their turn. */
export const TURN_BYTES = 256 * 1024;

const STREAM_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" } as const;

/** One finished call, as the stream sends it. */
export interface CallEvent {
  seq: number;
  /** ms since the epoch, when the call finished */
  time: number;
  service: string;
  method: string;
  code: string;
  ms: number;
  /** the volume the call is about: its volume_id, or the one CreateVolume made, or a snapshot's source */
  volumeId?: string;
  /** the request's key fields, for a one-line label */
  fields: Record<string, string>;
  request: unknown;
  response?: unknown;
  error?: string;
}

interface Published {
  readonly seq: number;
  readonly time: number;
  /** The call, until its event is made (then only `frame` is kept). */
  rec: CallRecord | undefined;
  /** Its event as the stream sends it, once a reader has needed it. */
  frame: string | undefined;
}

interface Reader {
  readonly res: http.ServerResponse;
  missed: number;
  /** While it is given the ring: the sequence number it is given next. */
  next: number;
  /** Its response has ended or closed: nothing more is written to it. */
  gone: boolean;
}

const KEY_FIELDS = ["name", "volumeId", "sourceVolumeId", "snapshotId", "nodeId", "stagingTargetPath", "targetPath"] as const;

/** What a call is about, for grouping: CreateVolume's volume comes back in its reply. */
function volumeOf(rec: CallRecord): string | undefined {
  if (rec.volumeId) return rec.volumeId;
  const req = rec.request as Record<string, unknown> | undefined;
  const res = rec.response as { volume?: { volumeId?: string }; snapshot?: { sourceVolumeId?: string } } | undefined;
  return res?.volume?.volumeId ?? res?.snapshot?.sourceVolumeId ?? (typeof req?.["sourceVolumeId"] === "string" ? (req["sourceVolumeId"] as string) : undefined);
}

export function toEvent(p: { seq: number; time: number; rec: CallRecord }): CallEvent {
  const { rec } = p;
  const req = (rec.request ?? {}) as Record<string, unknown>;
  const fields: Record<string, string> = {};
  // Cut as the log cuts them: the label of a call with a 500 KiB name is not 500 KiB.
  for (const f of KEY_FIELDS) if (typeof req[f] === "string" && req[f] !== "") fields[f] = cutField(req[f] as string);
  const found = volumeOf(rec);
  const volumeId = found === undefined ? undefined : cutField(found);
  return {
    seq: p.seq,
    time: p.time,
    service: rec.service,
    method: rec.method,
    code: codeName(rec.code),
    ms: Math.round(rec.seconds * 1e6) / 1e3,
    ...(volumeId ? { volumeId } : {}),
    fields,
    request: redact(rec.request),
    ...(rec.response !== undefined ? { response: redact(rec.response) } : {}),
    ...(rec.error !== undefined ? { error: rec.error } : {}),
  };
}

/** One call as a server-sent event: made once, for every reader, and kept instead of the record it was made from. */
function frame(p: Published): string {
  if (p.frame === undefined) {
    p.frame = `data: ${JSON.stringify(toEvent({ seq: p.seq, time: p.time, rec: p.rec! }))}\n\n`;
    p.rec = undefined;
  }
  return p.frame;
}

export class CallEvents {
  private readonly ring: (Published | undefined)[] = new Array(RING_SIZE);
  private seq = 0;
  /** Readers given the calls as they finish. */
  private readonly readers = new Set<Reader>();
  /** Readers still being given the ring. */
  private readonly replaying = new Set<Reader>();
  /** The first sequence number not yet sent to the readers. */
  private sent = 1;
  private scheduled = false;

  /** Feed to the interceptor's onCall: O(1), no allocation beyond the ring's entry. */
  publish(rec: CallRecord): void {
    const seq = ++this.seq;
    this.ring[seq % RING_SIZE] = { seq, time: Date.now(), rec, frame: undefined };
    if (this.readers.size === 0) {
      this.sent = seq + 1;
      return;
    }
    this.schedule();
  }

  /** The calls still in the ring after `since`, oldest first (all at once: for tests, not for the stream). */
  recent(since = 0): CallEvent[] {
    const out: CallEvent[] = [];
    for (let s = Math.max(since + 1, this.oldest); s <= this.seq; s++) {
      const p = this.at(s);
      if (!p) continue;
      // One whose event was made keeps only the frame: read back from it.
      out.push(p.rec ? toEvent({ seq: p.seq, time: p.time, rec: p.rec }) : (JSON.parse(p.frame!.slice("data: ".length)) as CallEvent));
    }
    return out;
  }

  get readerCount(): number {
    return this.readers.size + this.replaying.size;
  }

  /** Serve one reader: the ring first, then every call as it finishes, until it goes away. HEAD: the headers alone. */
  serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, STREAM_HEADERS);
    if (req.method === "HEAD") return void res.end();
    const since = Number(new URL(req.url ?? "/", "http://x").searchParams.get("since") ?? 0);
    res.write(`: csi-lab call events; ${RING_SIZE} kept\n\n`);
    // From the oldest call kept: what the ring no longer held when the reader came is not a gap.
    const reader: Reader = { res, missed: 0, next: Math.max(Number.isFinite(since) ? since + 1 : 1, this.oldest), gone: false };
    this.replaying.add(reader);
    const keepAlive = setInterval(() => this.send(reader, ": keep-alive\n\n"), 15_000);
    res.on("close", () => {
      clearInterval(keepAlive);
      reader.gone = true;
      this.replaying.delete(reader);
      this.readers.delete(reader);
    });
    this.replay(reader);
  }

  /** Stop every reader (the driver is shutting down). */
  close(): void {
    for (const r of [...this.replaying, ...this.readers]) {
      r.gone = true;
      r.res.end();
    }
    this.replaying.clear();
    this.readers.clear();
  }

  private get oldest(): number {
    return Math.max(1, this.seq - RING_SIZE + 1);
  }

  private at(seq: number): Published | undefined {
    const p = this.ring[seq % RING_SIZE];
    return p?.seq === seq ? p : undefined;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /**
   * Give a reader the ring from `next` on, an event at a time, until it has
   * caught up with the others (`sent`): then it joins them. It goes on when
   * its socket drains, or in the next turn once TURN_BYTES are made.
   */
  private replay(r: Reader): void {
    let bytes = 0;
    while (!r.gone) {
      if (r.next < this.oldest) {
        // The ring moved on while it waited: said in a gap before the next event.
        r.missed += this.oldest - r.next;
        r.next = this.oldest;
      }
      if (r.next >= this.sent) {
        this.replaying.delete(r);
        this.readers.add(r);
        return;
      }
      const p = this.at(r.next++);
      if (!p) continue;
      const chunk = frame(p);
      bytes += chunk.length;
      if (!this.write(r, chunk)) return void r.res.once("drain", () => this.replay(r));
      if (bytes >= TURN_BYTES) return void setImmediate(() => this.replay(r));
    }
  }

  /** Send the calls not yet sent to the readers, made once for all of them, TURN_BYTES a turn. */
  private flush(): void {
    this.scheduled = false;
    if (this.readers.size === 0) {
      this.sent = this.seq + 1;
      return;
    }
    if (this.sent < this.oldest) {
      // More calls finished than the ring holds before they could be sent.
      for (const r of this.readers) r.missed += this.oldest - this.sent;
      this.sent = this.oldest;
    }
    const lines: string[] = [];
    let bytes = 0;
    while (this.sent <= this.seq && bytes < TURN_BYTES) {
      const p = this.at(this.sent++);
      if (!p) continue;
      const line = frame(p);
      lines.push(line);
      bytes += line.length;
    }
    if (this.sent <= this.seq) this.schedule();
    if (lines.length === 0) return;
    const chunk = lines.join("");
    for (const r of this.readers) this.send(r, chunk, lines.length);
  }

  /** To a reader that keeps up; one whose socket holds more than MAX_BUFFERED misses these `events`. */
  private send(r: Reader, chunk: string, events = 0): void {
    if (r.res.writableLength > MAX_BUFFERED) {
      r.missed += events;
      return;
    }
    this.write(r, chunk);
  }

  /** Write, after saying what the reader missed; false when its socket wants it to wait for 'drain'. */
  private write(r: Reader, chunk: string): boolean {
    if (r.gone) return false; // ended: a write now would be an error
    if (r.missed > 0) {
      r.res.write(`event: gap\ndata: {"missed":${r.missed}}\n\n`);
      r.missed = 0;
    }
    return r.res.write(chunk);
  }
}
