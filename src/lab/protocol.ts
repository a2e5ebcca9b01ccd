/**
 * What the lab's server sends its page, as types both sides compile against.
 *
 * The server (src/lab) builds these from the engines — the playground's
 * walkthrough (story.ts), the driver's call stream (call-events.ts), the
 * replay's events (src/replay/run.ts) — and the page (src/lab-web) only
 * draws them. This file has no imports, so the browser's compiler and
 * Node's both read it; the server assigns the engines' values to these
 * types, so a change on either side that breaks the page fails to compile.
 */

export type Side = "client" | "server" | "network";
export type Layer = "call-id" | "codec" | "framing" | "transport" | "dispatch" | "handler" | "fault";

/** A named byte range: a piece of the frame, or a tag/length/value of the message inside it. */
export interface Span {
  readonly offset: number;
  readonly length: number;
  readonly label: string;
  readonly level: "frame" | "message";
  readonly kind: string;
  readonly depth: number;
  /** The frame (for frame spans) or the field (for message spans) it belongs to. */
  readonly within?: { readonly offset: number; readonly length: number; readonly label: string };
}

export interface StoryStep {
  readonly n: number;
  readonly side: Side;
  readonly layer: Layer;
  readonly title: string;
  readonly notes: readonly string[];
  readonly spentMs: number;
  readonly atMs: number;
  readonly event?: string;
  readonly bytes?: {
    readonly hex: string;
    readonly what: string;
    readonly typeName?: string;
    readonly text?: string;
    readonly spans: readonly Span[];
  };
}

export interface CallStory {
  readonly title: string;
  readonly settings: string;
  readonly table: string;
  readonly note?: string;
  readonly steps: readonly StoryStep[];
  readonly perLayer: readonly { readonly layer: Layer; readonly ms: number; readonly note: string }[];
  readonly totalMs: number;
  readonly result?: unknown;
  readonly error?: { readonly code: string; readonly message: string };
  readonly runs?: number;
  readonly runsText?: string;
}

/** What the call form offers. */
export interface CallOptionsList {
  readonly methods: readonly string[];
  readonly codecs: readonly string[];
  readonly transports: readonly string[];
  readonly faults: readonly { readonly spec: string; readonly label: string }[];
  /** The address the live view proposes (--driver). */
  readonly driver: string;
}

/** One call a driver served (the driver's /events). */
export interface CallEvent {
  readonly seq: number;
  readonly time: number;
  readonly service: string;
  readonly method: string;
  readonly code: string;
  readonly ms: number;
  readonly volumeId?: string;
  readonly fields: Readonly<Record<string, string>>;
  readonly request: unknown;
  readonly response?: unknown;
  readonly error?: string;
}

/** An example of deploy/examples the replay can play. */
export interface ExampleInfo {
  readonly name: string;
  readonly files: readonly string[];
  /** The first line of its README, when it has one. */
  readonly summary: string;
}

export interface ReplayCall {
  readonly method: string;
  readonly service: string;
  readonly process: string;
  readonly caller: string;
  readonly why: string;
}

export interface ReplayStep {
  readonly n: number;
  readonly change: string;
  readonly file?: string;
  readonly notes: readonly string[];
}

/** The replay as it runs: the engine's events, and the lab's own start and end. */
export type ReplayMessage =
  | { readonly type: "started"; readonly example: string; readonly scratch: string }
  | { readonly type: "step"; readonly step: ReplayStep }
  | { readonly type: "call"; readonly step: number; readonly call: ReplayCall; readonly request: unknown }
  | { readonly type: "reply"; readonly step: number; readonly call: ReplayCall; readonly code: string; readonly message?: string; readonly reply?: unknown; readonly ms: number; readonly ok: boolean }
  | { readonly type: "skipped"; readonly step: number; readonly reason: string }
  | { readonly type: "restart"; readonly step: number; readonly process: string; readonly ms: number }
  | { readonly type: "check"; readonly step: number; readonly what: string; readonly ok: boolean; readonly detail: string }
  | { readonly type: "record"; readonly step: number; readonly what: string; readonly set: { readonly [key: string]: unknown } }
  | { readonly type: "cleanup"; readonly step: number; readonly path: string; readonly ok: boolean; readonly detail: string }
  | { readonly type: "device"; readonly step: number; readonly action: "map" | "unmap"; readonly path: string; readonly loop: string }
  | { readonly type: "done"; readonly ok: boolean; readonly failures: readonly string[] }
  | { readonly type: "error"; readonly message: string };
