/**
 * Where one call's time went, per layer: a bar split in proportion, and the
 * same figures in a table, in words.
 *
 * Each step's time is the time since the step before it (one clock serves
 * both ends: they run in one process), summed per layer — the walkthrough's
 * closing table. On loopback the codec and framing take microseconds; the
 * transport's share is mostly waiting: for the other side, for the kernel,
 * for a retransmission timer.
 */
import type { CallStory } from "../lab/protocol.js";
import { formatMs, h } from "./dom.js";

export const LAYER_COLORS: Record<string, string> = {
  "call-id": "#6a3d9a",
  codec: "#1f78b4",
  framing: "#2e8b2e",
  transport: "#c0392b",
  dispatch: "#d35400",
  handler: "#8e5a1a",
  fault: "#555555",
};

export function layerBar(story: CallStory): HTMLElement {
  const total = story.perLayer.reduce((s, l) => s + l.ms, 0) || 1;
  const biggest = [...story.perLayer].sort((a, b) => b.ms - a.ms)[0];
  const bar = h(
    "div",
    { class: "layer-bar", role: "img", "aria-label": `time per layer; the biggest share is ${biggest?.layer ?? "none"}` },
    ...story.perLayer.map((l) => h("div", { style: `width: ${(100 * l.ms) / total}%; background: ${LAYER_COLORS[l.layer]}`, title: `${l.layer}: ${formatMs(l.ms)}` })),
  );
  const table = h(
    "table",
    { class: "layers-table" },
    h("tbody", {}, ...story.perLayer.map((l) =>
      h("tr", {}, h("td", {}, h("span", { class: "swatch", style: `background: ${LAYER_COLORS[l.layer]}` }), " ", l.layer), h("td", { class: "mono" }, formatMs(l.ms)), h("td", { class: "mono" }, `${Math.round((100 * l.ms) / total)} %`), h("td", { class: "muted" }, l.note)),
    )),
  );
  const words = biggest
    ? `From the first step to the last: ${formatMs(story.totalMs)}. The ${biggest.layer} layer took the most, ${formatMs(biggest.ms)} (${Math.round((100 * biggest.ms) / total)} %): ${biggest.note}.`
    : "";
  return h("section", { "aria-labelledby": "layers-h" }, h("h3", { id: "layers-h" }, "Time per layer"), h("p", {}, words), bar, table);
}
