/**
 * The call on two lanes: the client above, the server below, and each
 * message a line from the side that sent it to the side that got it.
 *
 * This is where faults show. A lost message stops half-way at a cross; a
 * duplicated one arrives twice; the UDP client's retransmissions are new
 * lines with the same xid; a crash ends the server's lane until it comes
 * back. Dots mark each time the server ran the procedure — the count that
 * tells at-least-once from at-most-once. Events are spaced in order, not to
 * scale (a 100 ms retransmission timer would dwarf a 0.05 ms encode); each
 * is labelled with its time since the first step.
 */
import type { CallStory, StoryStep } from "../lab/protocol.js";
import { formatMs, h, svg } from "./dom.js";

const Y = { client: 60, network: 135, server: 210 } as const;
const GAP = 78;

interface Flight {
  fromX: number;
  fromY: number;
  to: "client" | "server";
  copies: number;
  lost: boolean;
}

const SENDS = new Set(["send", "retransmit"]);
const MARKS: Record<string, { text: string; side: "client" | "server" | "network" }> = {
  run: { text: "● ran", side: "server" },
  crash: { text: "✗ crash", side: "server" },
  restart: { text: "↻ back", side: "server" },
  "give-up": { text: "⏱ deadline", side: "client" },
  retry: { text: "↻ retry", side: "client" },
  delayed: { text: "⌛ held up", side: "network" },
};

/** One sentence per event, for the words under the picture. */
function sentence(s: StoryStep): string {
  const who = s.side === "network" ? "The network" : s.side === "client" ? "The client" : "The server";
  return `${formatMs(s.atMs)}: ${who} — ${s.title}`;
}

export function timeline(story: CallStory): HTMLElement {
  const events = story.steps.filter((s) => s.event);
  const width = Math.max(640, 120 + events.length * GAP);
  const root = svg("svg", { viewBox: `0 0 ${width} 270`, width, height: 270, role: "img", "aria-labelledby": "timeline-words" });
  root.append(
    svg("text", { x: 8, y: Y.client + 6, "font-weight": "bold" }, "client"),
    svg("line", { class: "lane", x1: 90, y1: Y.client, x2: width - 10, y2: Y.client }),
    svg("text", { x: 8, y: Y.server + 6, "font-weight": "bold" }, "server"),
    svg("line", { class: "lane", x1: 90, y1: Y.server, x2: width - 10, y2: Y.server }),
  );
  const flying: Flight[] = [];
  let x = 100;
  let lastFlight: Flight | undefined;
  for (const s of events) {
    const ev = s.event!;
    const side = s.side === "network" ? "network" : s.side;
    if (ev === "cached-reply") {
      // The duplicate-request cache answers: a reply goes out, and the procedure does not run again.
      lastFlight = { fromX: x, fromY: Y.server, to: "client", copies: 1, lost: false };
      flying.push(lastFlight);
      root.append(svg("text", { x: x - 14, y: Y.server + 28, "font-size": 14, "font-weight": "bold" }, "cache hit"));
    } else if (SENDS.has(ev) && side !== "network") {
      lastFlight = { fromX: x, fromY: Y[side], to: side === "client" ? "server" : "client", copies: 1, lost: false };
      flying.push(lastFlight);
      root.append(svg("text", { x: x - 12, y: side === "client" ? Y.client - 14 : Y.server + 28, "font-size": 13 }, ev === "retransmit" ? "resend" : "send"));
    } else if (ev === "lost" && lastFlight) {
      lastFlight.lost = true;
      const midX = (lastFlight.fromX + x) / 2 + GAP / 2;
      root.append(
        svg("line", { class: "msg", x1: lastFlight.fromX, y1: lastFlight.fromY, x2: midX, y2: Y.network, stroke: "var(--bad)", "stroke-dasharray": "6 4" }),
        svg("text", { x: midX - 8, y: Y.network + 8, "font-size": 26, fill: "var(--bad)" }, "✗"),
        svg("text", { x: midX + 14, y: Y.network + 6, "font-size": 13 }, "lost"),
      );
      flying.splice(flying.indexOf(lastFlight), 1);
    } else if (ev === "duplicated" && lastFlight) {
      lastFlight.copies = 2;
      root.append(svg("text", { x: x - 10, y: Y.network, "font-size": 13 }, "×2"));
    } else if (ev === "receive" && side !== "network") {
      const f = flying.find((m) => m.to === side);
      if (f) {
        root.append(svg("line", { class: "msg", x1: f.fromX, y1: f.fromY, x2: x, y2: Y[side], stroke: f.to === "server" ? "var(--client)" : "var(--server)", "marker-end": "url(#arrow)" }));
        if (--f.copies === 0) flying.splice(flying.indexOf(f), 1);
      }
    } else if (MARKS[ev]) {
      const m = MARKS[ev]!;
      const y = Y[m.side];
      root.append(svg("text", { x: x - 14, y: m.side === "server" ? y + 28 : m.side === "client" ? y - 14 : y, "font-size": 14, "font-weight": "bold", fill: ev === "crash" ? "var(--bad)" : "var(--fg)" }, m.text));
      if (ev === "run") root.append(svg("circle", { cx: x, cy: y, r: 8, fill: "var(--server)" }));
    }
    root.append(svg("text", { x: x - 16, y: 258, "font-size": 11, fill: "var(--muted)" }, formatMs(s.atMs).replace(" ms", "")));
    x += GAP;
  }
  // Messages still in flight when the story ends: the caller had given up on them.
  for (const f of flying) root.append(svg("line", { class: "msg", x1: f.fromX, y1: f.fromY, x2: f.fromX + GAP / 2, y2: Y.network, stroke: "var(--muted)", "stroke-dasharray": "3 5" }));
  root.prepend(
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "var(--fg)" }))),
  );
  const runs = story.runs !== undefined ? h("p", { class: "runs", "data-runs": story.runs }, story.runsText ?? "") : null;
  const words = h("details", { id: "timeline-words" }, h("summary", {}, "The timeline in words (time since the first step, ms along the bottom)"), h("ol", {}, ...events.map((s) => h("li", {}, sentence(s)))));
  return h("section", { "aria-labelledby": "timeline-h" }, h("h3", { id: "timeline-h" }, "The two ends on a timeline"), runs, h("div", { style: "overflow-x: auto" }, root), words);
}
