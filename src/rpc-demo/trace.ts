/**
 * What the walkthrough narrates: each layer notes when it finished a step.
 *
 * Transports, codecs and the dispatcher take an optional Trace and call
 * `step` as each piece of work ends; the time since the previous step on the
 * same side is the time that layer spent. Bytes are kept as copies and only
 * turned into annotated dumps after the call, so narrating does not slow
 * the call it narrates. Without a Trace nothing is recorded.
 */
export type Side = "client" | "server" | "network";

export type Layer = "call-id" | "codec" | "framing" | "transport" | "dispatch" | "handler" | "fault";

/**
 * What a step did to the call, where it matters for a timeline of the two
 * ends: a message left or reached a side, was lost, doubled or held up, the
 * procedure ran, the server crashed or came back, a caller resent or gave up.
 */
export type TraceEvent =
  | "send"
  | "receive"
  | "run"
  | "lost"
  | "duplicated"
  | "delayed"
  | "crash"
  | "restart"
  | "retransmit"
  | "cached-reply"
  | "give-up"
  | "retry";

export interface TraceStep {
  readonly side: Side;
  readonly layer: Layer;
  readonly title: string;
  /** Extra lines: header fields, table rows, decoded values. */
  readonly notes: readonly string[];
  /** Bytes this step produced or received, with what they are. */
  readonly bytes: { readonly what: "message" | "frame" | "datagram" | "raw"; readonly data: Buffer; readonly typeName?: string } | undefined;
  /** Named byte ranges of `bytes`, in order (header fields of a frame). */
  readonly segments: readonly Segment[];
  /** process.hrtime.bigint() when the step ended. */
  readonly at: bigint;
  readonly event?: TraceEvent;
}

/**
 * What a named byte range is, so a picture can colour it: the pieces of a
 * frame around the message, or the message itself.
 */
export type SegmentKind =
  | "record-mark"
  | "xid"
  | "header"
  | "grpc-prefix"
  | "frame-header"
  | "frame-payload"
  | "hpack"
  | "preface"
  | "message";

export interface Segment {
  readonly length: number;
  readonly label: string;
  readonly kind?: SegmentKind;
  /** The frame this range belongs to ("HEADERS frame, stream 1"), when a step holds several. */
  readonly group?: string;
}

export class Trace {
  readonly steps: TraceStep[] = [];

  /** onStep sees each step as it is recorded (a server narrating live). */
  constructor(private readonly onStep?: (step: TraceStep, index: number) => void) {}

  step(
    side: Side,
    layer: Layer,
    title: string,
    extra: {
      notes?: readonly string[];
      bytes?: Uint8Array;
      what?: "message" | "frame" | "datagram" | "raw";
      typeName?: string;
      segments?: readonly Segment[];
      event?: TraceEvent;
    } = {},
  ): void {
    const at = process.hrtime.bigint();
    const step: TraceStep = {
      side,
      layer,
      title,
      notes: extra.notes ?? [],
      bytes: extra.bytes ? { what: extra.what ?? "raw", data: Buffer.from(extra.bytes), typeName: extra.typeName } : undefined,
      segments: extra.segments ?? [],
      at,
      ...(extra.event ? { event: extra.event } : {}),
    };
    this.steps.push(step);
    this.onStep?.(step, this.steps.length - 1);
  }
}
