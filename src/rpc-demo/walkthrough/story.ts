/**
 * A traced call as data: the walkthrough for a picture instead of a terminal.
 *
 * The terminal narration (narrate.ts) and the lab page are two views of one
 * Trace. This module gives the page what narrate prints, as plain JSON:
 * each step with its side, layer, time and title, and for steps that carry
 * bytes every byte range named twice over — the frame's pieces (record mark,
 * xid, HTTP/2 frame header, HPACK, gRPC prefix; from the transports'
 * segments) and, inside the message, the protobuf dump's rows (each tag,
 * length prefix and value, with the whole field it belongs to). The offsets
 * are the codec's own: the page only draws them.
 */
import { dumpMessage } from "../codecs/dump";
import { schemas } from "../codecs/schema";
import type { Layer, SegmentKind, Side, Trace, TraceEvent, TraceStep } from "../trace";
import { timings } from "./narrate";
import type { WalkthroughRun } from "./walkthrough";

/** One named byte range. `level` says which picture it belongs to: the frame around the message, or the message. */
export interface Span {
  readonly offset: number;
  readonly length: number;
  readonly label: string;
  readonly level: "frame" | "message";
  /** frame: a SegmentKind; message: tag, length, value or error */
  readonly kind: string;
  readonly depth: number;
  /** The enclosing frame (frame spans) or field (message spans). */
  readonly within?: { readonly offset: number; readonly length: number; readonly label: string };
}

export interface StepBytes {
  readonly hex: string;
  readonly what: "message" | "frame" | "datagram" | "raw";
  readonly typeName?: string;
  /** A JSON message, as text. */
  readonly text?: string;
  readonly spans: Span[];
}

export interface StoryStep {
  readonly n: number;
  readonly side: Side;
  readonly layer: Layer;
  readonly title: string;
  readonly notes: readonly string[];
  /** Time since the step before, and since the first, in ms. */
  readonly spentMs: number;
  readonly atMs: number;
  readonly event?: TraceEvent;
  readonly bytes?: StepBytes;
}

export interface CallStory {
  readonly title: string;
  readonly settings: string;
  readonly table: string;
  readonly note?: string;
  readonly steps: StoryStep[];
  readonly perLayer: { readonly layer: Layer; readonly ms: number; readonly note: string }[];
  readonly totalMs: number;
  readonly result?: unknown;
  readonly error?: { readonly code: string; readonly message: string };
  readonly runs?: number;
  readonly runsText?: string;
}

const ms = (ns: bigint) => Number(ns) / 1e6;

/** The message's rows, shifted to where the message sits in the step's bytes. */
function messageSpans(data: Buffer, offset: number, length: number, typeName: string | undefined): Span[] {
  if (!typeName || length === 0) return [];
  const rows = dumpMessage(data.subarray(offset, offset + length), schemas().message(typeName));
  return rows.map((r) => ({
    offset: offset + r.offset,
    length: r.length,
    label: r.text,
    level: "message",
    kind: r.kind,
    depth: r.depth,
    within: r.field ? { offset: offset + r.field.offset, length: r.field.length, label: rows.find((t) => t.kind === "tag" && t.offset === r.field!.offset)?.text ?? "" } : undefined,
  }));
}

export function stepBytes(step: TraceStep): StepBytes | undefined {
  const b = step.bytes;
  if (!b) return undefined;
  const spans: Span[] = [];
  const isJson = b.what === "message" && !b.typeName;
  if (step.segments.length === 0) {
    if (b.what === "message") spans.push(...messageSpans(b.data, 0, b.data.length, b.typeName));
  } else {
    // Frame spans, each knowing the extent of its group (the frame it is part of).
    let offset = 0;
    const groups = new Map<string, { offset: number; length: number; label: string }>();
    for (const s of step.segments) {
      const length = Math.min(s.length, b.data.length - offset);
      if (s.group) {
        const g = groups.get(s.group);
        if (g) g.length = offset + length - g.offset;
        else groups.set(s.group, { offset, length, label: s.group });
      }
      offset += length;
    }
    offset = 0;
    for (const s of step.segments) {
      const length = Math.min(s.length, b.data.length - offset);
      const kind: SegmentKind = s.kind ?? "header";
      spans.push({ offset, length, label: s.label, level: "frame", kind, depth: 0, within: s.group ? groups.get(s.group) : undefined });
      if (kind === "message") spans.push(...messageSpans(b.data, offset, length, b.typeName));
      offset += length;
    }
  }
  return {
    hex: b.data.toString("hex"),
    what: b.what,
    ...(b.typeName ? { typeName: b.typeName } : {}),
    ...(isJson ? { text: b.data.toString("utf8") } : {}),
    spans,
  };
}

export function storyOf(trace: Trace, start: bigint): Pick<CallStory, "steps" | "perLayer" | "totalMs"> {
  const t = timings(trace, start);
  return {
    steps: trace.steps.map((step, i) => ({
      n: i + 1,
      side: step.side,
      layer: step.layer,
      title: step.title,
      notes: step.notes,
      spentMs: ms(t.spent[i]!),
      atMs: ms(step.at - start),
      ...(step.event ? { event: step.event } : {}),
      ...(step.bytes ? { bytes: stepBytes(step) } : {}),
    })),
    perLayer: t.perLayer.map((l) => ({ layer: l.layer, ms: ms(l.ns), note: l.note })),
    totalMs: ms(t.total),
  };
}

/** A walkthrough's run as the lab page's JSON. */
export function callStory(run: WalkthroughRun): CallStory {
  return {
    title: run.intro.title,
    settings: run.intro.settings,
    table: run.intro.table,
    ...(run.intro.note ? { note: run.intro.note } : {}),
    ...storyOf(run.trace, run.start),
    ...(run.error ? { error: { code: run.error.codeName, message: run.error.message } } : { result: run.result }),
    ...(run.runs !== undefined ? { runs: run.runs, runsText: run.runsText } : {}),
  };
}
