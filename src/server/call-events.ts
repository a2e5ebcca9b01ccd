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
 *   - the work happens later (setImmediate), once for all readers, and only
 *     while someone is reading;
 *   - a slow reader is never waited for: when more than MAX_BUFFERED bytes
 *     wait in its socket, its events are skipped, and it is told how many
 *     it missed (`event: gap`) when it catches up.
 * A reader that connects gets the ring first (`?since=N` for the calls
 * after sequence number N), so a page opened late still sees the volume's
 * history up to RING_SIZE calls back.
 */
import type * as http from "node:http";
import { codeName } from "../csi/errors";
import { cutField, type CallRecord } from "./interceptor";
import { redact } from "./redact";

export const RING_SIZE = 512;
/** Bytes allowed to wait in one reader's socket before its events are skipped. */
export const MAX_BUFFERED = 256 * 1024;

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
  readonly rec: CallRecord;
}

interface Reader {
  readonly res: http.ServerResponse;
  missed: number;
}

const KEY_FIELDS = ["name", "volumeId", "sourceVolumeId", "snapshotId", "nodeId", "stagingTargetPath", "targetPath"] as const;

/** What a call is about, for grouping: CreateVolume's volume comes back in its reply. */
function volumeOf(rec: CallRecord): string | undefined {
  if (rec.volumeId) return rec.volumeId;
  const req = rec.request as Record<string, unknown> | undefined;
  const res = rec.response as { volume?: { volumeId?: string }; snapshot?: { sourceVolumeId?: string } } | undefined;
  return res?.volume?.volumeId ?? res?.snapshot?.sourceVolumeId ?? (typeof req?.["sourceVolumeId"] === "string" ? (req["sourceVolumeId"] as string) : undefined);
}

export function toEvent(p: Published): CallEvent {
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

export class CallEvents {
  private readonly ring: (Published | undefined)[] = new Array(RING_SIZE);
  private seq = 0;
  private readonly readers = new Set<Reader>();
  /** The first sequence number not yet sent to the readers. */
  private sent = 1;
  private scheduled = false;

  /** Feed to the interceptor's onCall: O(1), no allocation beyond the ring's entry. */
  publish(rec: CallRecord): void {
    const seq = ++this.seq;
    this.ring[seq % RING_SIZE] = { seq, time: Date.now(), rec };
    if (this.readers.size === 0) {
      this.sent = seq + 1;
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** The calls still in the ring after `since`, oldest first. */
  recent(since = 0): CallEvent[] {
    const out: CallEvent[] = [];
    for (let s = Math.max(since + 1, this.seq - RING_SIZE + 1, 1); s <= this.seq; s++) {
      const p = this.ring[s % RING_SIZE];
      if (p?.seq === s) out.push(toEvent(p));
    }
    return out;
  }

  get readerCount(): number {
    return this.readers.size;
  }

  /** Serve one reader: the ring first, then every call as it finishes, until it goes away. */
  serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const since = Number(new URL(req.url ?? "/", "http://x").searchParams.get("since") ?? 0);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" });
    res.write(`: csi-lab call events; ${RING_SIZE} kept\n\n`);
    const reader: Reader = { res, missed: 0 };
    // Each is counted: what a full buffer drops is said in the next gap, as for live calls.
    for (const e of this.recent(Number.isFinite(since) ? since : 0)) this.send(reader, `data: ${JSON.stringify(e)}\n\n`, 1);
    this.readers.add(reader);
    const keepAlive = setInterval(() => this.send(reader, ": keep-alive\n\n"), 15_000);
    res.on("close", () => {
      clearInterval(keepAlive);
      this.readers.delete(reader);
    });
  }

  /** Stop every reader (the driver is shutting down). */
  close(): void {
    for (const r of this.readers) r.res.end();
    this.readers.clear();
  }

  private flush(): void {
    this.scheduled = false;
    const first = Math.max(this.sent, this.seq - RING_SIZE + 1);
    const lines: string[] = [];
    for (let s = first; s <= this.seq; s++) {
      const p = this.ring[s % RING_SIZE];
      if (p?.seq === s) lines.push(`data: ${JSON.stringify(toEvent(p))}\n\n`);
    }
    this.sent = this.seq + 1;
    if (lines.length === 0) return;
    const chunk = lines.join("");
    for (const r of this.readers) this.send(r, chunk, lines.length);
  }

  private send(r: Reader, chunk: string, events = 0): void {
    if (r.res.writableLength > MAX_BUFFERED) {
      r.missed += events;
      return;
    }
    if (r.missed > 0) {
      r.res.write(`event: gap\ndata: {"missed":${r.missed}}\n\n`);
      r.missed = 0;
    }
    r.res.write(chunk);
  }
}
