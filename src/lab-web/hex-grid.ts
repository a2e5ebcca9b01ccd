/**
 * Bytes as a hex grid, where every byte says what it is.
 *
 * A message on the wire is nested: the transport's frame (a TCP record mark,
 * a UDP call header with its xid, an HTTP/2 frame's 9-byte header, HPACK
 * headers, gRPC's 5-byte prefix) wraps the encoded message, and inside the
 * message each field is a tag, maybe a length, and a value. Pointing at a
 * byte (hover, or focus and the arrow keys) highlights the piece it belongs
 * to, the whole field around it, and its frame, and names them all below
 * the grid. The offsets come from the codec's own dump and the transports'
 * own segments (sent by the server): the page only draws them.
 */
import type { Span } from "../lab/protocol.js";
import { h } from "./dom.js";

const PER_ROW = 16;

export const KIND_NAMES: Record<string, string> = {
  "record-mark": "TCP record mark",
  xid: "xid (transaction ID)",
  header: "call/reply header",
  preface: "HTTP/2 preface",
  "frame-header": "HTTP/2 frame header (9 bytes)",
  hpack: "HPACK header",
  "frame-payload": "frame payload",
  "grpc-prefix": "gRPC prefix (5 bytes)",
  message: "the encoded message",
};

interface Pick {
  item: Span | undefined;
  frame: Span | undefined;
  message: Span | undefined;
}

function pickAt(spans: readonly Span[], k: number): Pick {
  const inside = (s: Span) => k >= s.offset && k < s.offset + s.length;
  const frame = spans.find((s) => s.level === "frame" && inside(s));
  const message = spans.find((s) => s.level === "message" && inside(s));
  return { item: message ?? frame, frame, message };
}

const rangeText = (s: { offset: number; length: number }) => (s.length === 1 ? `byte ${s.offset}` : `bytes ${s.offset}–${s.offset + s.length - 1}`);

/** The grid and its explanation panel, for one step's bytes. */
export function hexGrid(hex: string, spans: readonly Span[], caption: string): HTMLElement {
  const n = hex.length / 2;
  const cells: HTMLElement[] = [];
  const grid = h("div", { class: "hex", role: "group", "aria-label": `${caption}: ${n} bytes; arrow keys move from byte to byte` });
  const info = h("dl", { class: "byte-info", "aria-live": "polite" });
  info.append(h("dt", {}, "Point at"), h("dd", {}, "a byte (hover, or Tab into the grid and use the arrow keys) to see what it is."));
  for (let k = 0; k < n; k++) {
    if (k % PER_ROW === 0) grid.append(h("span", { class: "off", "aria-hidden": "true" }, k.toString(16).padStart(4, "0")));
    const p = pickAt(spans, k);
    const classes = ["b"];
    if (p.frame) classes.push(`k-${p.frame.kind}`);
    if (p.message) classes.push(`m-${p.message.kind}`);
    const cell = h("span", { class: classes.join(" "), "data-offset": k, tabindex: k === 0 ? 0 : -1, role: "button", "aria-label": `byte ${k}: ${hex.slice(2 * k, 2 * k + 2)}, ${p.item?.label ?? ""}` }, hex.slice(2 * k, 2 * k + 2));
    cells.push(cell);
    grid.append(cell);
  }

  let active = -1;
  const mark = (range: { offset: number; length: number } | undefined, cls: string) => {
    if (!range) return;
    for (let i = range.offset; i < range.offset + range.length && i < n; i++) cells[i]!.classList.add(cls);
  };
  const highlight = (k: number) => {
    for (const c of cells) c.classList.remove("hl-item", "hl-field", "hl-frame", "hl-group", "active");
    const p = pickAt(spans, k);
    cells[k]!.classList.add("active");
    mark(p.frame?.within, "hl-group");
    mark(p.frame, "hl-frame");
    mark(p.message?.within, "hl-field");
    mark(p.item, "hl-item");
    grid.dataset["item"] = p.item ? `${p.item.offset}:${p.item.length}` : "";
    grid.dataset["field"] = p.message?.within ? `${p.message.within.offset}:${p.message.within.length}` : "";
    grid.dataset["frame"] = p.frame ? `${p.frame.offset}:${p.frame.length}` : "";
    const rows: [string, string][] = [[`Byte ${k}`, `0x${hex.slice(2 * k, 2 * k + 2)}`]];
    if (p.message) {
      rows.push([p.message.kind === "tag" ? "Tag" : p.message.kind === "length" ? "Length" : p.message.kind === "error" ? "Not protobuf" : "Value", `${p.message.label} (${rangeText(p.message)})`]);
      if (p.message.within) rows.push(["Field", `${p.message.within.label.replace(/^tag: /, "")} (${rangeText(p.message.within)})`]);
    }
    if (p.frame) rows.push([KIND_NAMES[p.frame.kind] ?? p.frame.kind, `${p.frame.label} (${rangeText(p.frame)})`]);
    if (p.frame?.within) rows.push(["Frame", `${p.frame.within.label} (${rangeText(p.frame.within)})`]);
    info.replaceChildren(...rows.flatMap(([t, d]) => [h("dt", {}, t), h("dd", {}, d)]));
  };
  const focusByte = (k: number) => {
    if (k < 0 || k >= n) return;
    if (active >= 0) cells[active]!.tabIndex = -1;
    active = k;
    cells[k]!.tabIndex = 0;
    cells[k]!.focus();
  };
  grid.addEventListener("mouseover", (e) => {
    const off = (e.target as HTMLElement).dataset["offset"];
    if (off !== undefined) highlight(Number(off));
  });
  grid.addEventListener("focusin", (e) => {
    const off = (e.target as HTMLElement).dataset["offset"];
    if (off === undefined) return;
    active = Number(off);
    highlight(active);
  });
  grid.addEventListener("keydown", (e) => {
    const moves: Record<string, number> = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: PER_ROW, ArrowUp: -PER_ROW };
    if (e.key in moves) focusByte(Math.min(n - 1, Math.max(0, active + moves[e.key]!)));
    else if (e.key === "Home") focusByte(0);
    else if (e.key === "End") focusByte(n - 1);
    else return;
    e.preventDefault();
    e.stopPropagation();
  });

  const kinds = [...new Set(spans.filter((s) => s.level === "frame").map((s) => s.kind))];
  const legend = h("div", { class: "legend", "aria-hidden": "true" }, ...kinds.map((k) => h("span", { style: `--c: var(--k-${k})` }, KIND_NAMES[k] ?? k)));
  if (spans.some((s) => s.level === "message")) legend.append(h("span", { style: "--c: var(--bg)" }, "underlined: a tag · bold italic: a length"));
  return h("figure", { class: "hexfig" }, h("figcaption", {}, caption), legend, grid, info);
}
