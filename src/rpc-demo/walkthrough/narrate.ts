/**
 * Turn a Trace into the story of one call, step by step.
 *
 * Each step shows which side did it, which layer, how long it took since
 * the step before (both ends run in one process, so one clock serves both),
 * and what it produced: the annotated protobuf bytes of a message, the named
 * byte ranges of a frame, header fields. At the end, time is summed per
 * layer — where a round trip's microseconds go.
 *
 * Plain mode is for tests, logs and slides: no colour, nothing interactive.
 */
import { dumpMessage, formatDump } from "../codecs/dump";
import { schemas } from "../codecs/schema";
import type { Layer, Segment, Trace, TraceStep } from "../trace";

export interface NarrateOptions {
  /** No ANSI colour. */
  readonly plain: boolean;
}

const LAYER_ORDER: readonly Layer[] = ["call-id", "codec", "framing", "transport", "dispatch", "handler", "fault"];

const color = (on: boolean, code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export function formatMs(ns: bigint): string {
  const ms = Number(ns) / 1e6;
  return ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(3)} ms`;
}

/** Hex rows for named byte ranges: one row (or more, 8 bytes each) per range. */
export function formatSegments(bytes: Buffer, segments: readonly Segment[]): string {
  const rows = [];
  let offset = 0;
  for (const s of segments) {
    rows.push({ offset, length: Math.min(s.length, bytes.length - offset), depth: 0, text: s.label, kind: "value" as const });
    offset += s.length;
  }
  if (offset < bytes.length) rows.push({ offset, length: bytes.length - offset, depth: 0, text: "(more)", kind: "value" as const });
  return formatDump(bytes, rows.filter((r) => r.length > 0 || r.offset === 0));
}

function bytesBlock(step: TraceStep): string | undefined {
  const b = step.bytes;
  if (!b) return undefined;
  if (step.segments.length > 0) return formatSegments(b.data, step.segments);
  if (b.what === "message" && b.typeName) return formatDump(b.data, dumpMessage(b.data, schemas().message(b.typeName)));
  if (b.what === "message") return `${b.data.length} bytes of UTF-8 text:\n${b.data.toString("utf8")}`;
  return formatSegments(b.data, [{ length: b.data.length, label: `${b.data.length} bytes` }]);
}

function indent(text: string, by: string): string {
  return text
    .split("\n")
    .map((l) => (l ? by + l : l))
    .join("\n");
}

/** One step as text: number, side, layer, time spent, title, then notes and bytes. */
export function renderStep(step: TraceStep, index: number, spent: bigint, opts: NarrateOptions): string {
  const c = !opts.plain;
  const sideColor: Record<string, (s: string) => string> = { client: color(c, "36"), server: color(c, "35"), network: color(c, "33") };
  const head =
    `${String(index + 1).padStart(2)}. ${sideColor[step.side]!(step.side.padEnd(7))} ${step.layer.padEnd(9)} ` +
    `${color(c, "2")(`+${formatMs(spent)}`.padStart(11))}  ${color(c, "1")(step.title)}`;
  const body: string[] = [];
  for (const n of step.notes) body.push(indent(n, "      "));
  const block = bytesBlock(step);
  if (block) body.push(indent(block, "      "));
  return [head, ...body].join("\n");
}

/** Time per step (since the step before) and per layer: what both views of a call show. */
export function timings(trace: Trace, start: bigint): { spent: bigint[]; perLayer: { layer: Layer; ns: bigint; note: string }[]; total: bigint } {
  const perLayer = new Map<Layer, bigint>();
  let prev = start;
  const spent = trace.steps.map((step) => {
    const t = step.at - prev;
    prev = step.at;
    perLayer.set(step.layer, (perLayer.get(step.layer) ?? 0n) + t);
    return t;
  });
  const layers = LAYER_ORDER.filter((l) => perLayer.has(l)).map((layer) => ({ layer, ns: perLayer.get(layer)!, note: LAYER_NOTES[layer] }));
  return { spent, perLayer: layers, total: prev - start };
}

export function narrate(trace: Trace, start: bigint, opts: NarrateOptions): { steps: string[]; summary: string } {
  const t = timings(trace, start);
  const steps = trace.steps.map((step, i) => renderStep(step, i, t.spent[i]!, opts));
  const lines = [color(!opts.plain, "1")("Time per layer (since the step before, summed):")];
  for (const { layer, ns, note } of t.perLayer) lines.push(`  ${layer.padEnd(10)} ${formatMs(ns).padStart(11)}  ${note}`);
  lines.push(`  ${"total".padEnd(10)} ${formatMs(t.total).padStart(11)}  from the first step to the last`);
  return { steps, summary: lines.join("\n") };
}

export const LAYER_NOTES: Record<Layer, string> = {
  "call-id": "finding the procedure's IDs",
  codec: "turning values into bytes and back",
  framing: "headers, length prefixes, matching replies to calls",
  transport: "sockets and the wait for bytes (the network, the other side)",
  dispatch: "the server's table lookup",
  handler: "the procedure itself",
  fault: "injected faults (delays count where the wait ends)",
};
