/**
 * View 1 — one call, three layers, step by step.
 *
 * The form picks a method, a codec, a transport and faults; the lab's
 * server runs that call with the playground's own engine (the one behind
 * `csi-lab rpc walkthrough`) and sends back every step it traced. Here the
 * class steps through them: who acted (client, server, network), in which
 * layer (call ID, codec, framing, transport, dispatch, handler), how long it
 * took, and the bytes it produced, as a hex grid that names every byte.
 * Below: the time per layer, and the call on a two-lane timeline where
 * faults show (lost, duplicated, resent, how many times the server ran it).
 */
import type { CallOptionsList, CallStory, StoryStep } from "../lab/protocol.js";
import { announce, api, formatMs, h } from "./dom.js";
import { hexGrid } from "./hex-grid.js";
import { layerBar } from "./layer-bar.js";
import { timeline } from "./timeline.js";

const LAYER_WORDS: Record<string, string> = {
  "call-id": "call ID: which procedure",
  codec: "codec: values ↔ bytes",
  framing: "framing: headers, lengths, matching replies",
  transport: "transport: sockets, the network",
  dispatch: "dispatch: the server's table",
  handler: "handler: the procedure itself",
  fault: "fault: injected by the lab",
};

function select(name: string, label: string, options: readonly { value: string; text: string }[], value: string): HTMLLabelElement {
  return h("label", {}, label, h("select", { name, id: `call-${name}` }, ...options.map((o) => h("option", { value: o.value, selected: o.value === value }, o.text))));
}

function stepDetail(step: StoryStep, total: number): HTMLElement {
  const head = h(
    "p",
    { class: "step-head" },
    `Step ${step.n} of ${total} · `,
    h("span", { class: `side-${step.side}` }, step.side),
    ` · ${LAYER_WORDS[step.layer] ?? step.layer} · +${formatMs(step.spentMs)}`,
  );
  const parts: (HTMLElement | null)[] = [head, h("p", { class: "step-title" }, step.title)];
  if (step.notes.length) parts.push(h("pre", {}, step.notes.join("\n")));
  const b = step.bytes;
  if (b) {
    if (b.text !== undefined) parts.push(h("p", {}, `${b.hex.length / 2} bytes of JSON text: `, h("code", {}, b.text)));
    const what =
      b.what === "message"
        ? `the encoded message${b.typeName ? ` (${b.typeName})` : " (JSON)"}`
        : b.what === "datagram"
          ? "one UDP datagram"
          : step.layer === "transport"
            ? "bytes on the wire"
            : "the framed message";
    parts.push(hexGrid(b.hex, b.spans, `${what}, ${b.hex.length / 2} bytes`));
  }
  return h("div", { class: "step-detail", "data-step": step.n }, ...parts);
}

export function callView(root: HTMLElement): void {
  const status = h("p", { class: "status", role: "status" }, "Loading the choices…");
  const form = h("form", { class: "form", "aria-label": "The call to make" });
  const result = h("div", { id: "call-result" });
  root.append(
    h("h2", {}, "One call, three layers"),
    h(
      "p",
      { class: "explain" },
      "A remote procedure call in three layers: the call ID says which procedure, the codec turns its arguments into bytes, and the transport carries the bytes. ",
      "Choose a call and run it: both ends run in the lab's server, on real sockets, traced step by step. Step through with the buttons or the ← → keys; point at a byte to see which field, tag, length or frame header it is.",
    ),
    form,
    status,
    result,
  );

  void api<CallOptionsList>("/api/options").then((o) => {
    form.append(
      select("method", "Method", o.methods.map((m) => ({ value: m, text: m })), "add"),
      select("codec", "Codec", o.codecs.map((c) => ({ value: c, text: c === "json" ? "JSON" : "protobuf" })), "protobuf"),
      select("transport", "Transport", o.transports.map((t) => ({ value: t, text: t === "http2" ? "HTTP/2 (gRPC)" : t.toUpperCase() })), "tcp"),
      select("fault", "Faults", o.faults.map((f) => ({ value: f.spec, text: f.label })), ""),
      h("button", { class: "primary", type: "submit", id: "call-run" }, "Run the call"),
    );
    status.textContent = "Choose a call and press “Run the call”.";
    const faultSelect = form.querySelector<HTMLSelectElement>("#call-fault")!;
    const methodSelect = form.querySelector<HTMLSelectElement>("#call-method")!;
    // A fault is best seen on Increment: it changes state, so running it twice shows.
    faultSelect.addEventListener("change", () => {
      if (faultSelect.value && methodSelect.value === "add") methodSelect.value = "increment";
    });
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const params: Record<string, string> = {};
    for (const [k, v] of data) params[k] = String(v);
    const run = form.querySelector<HTMLButtonElement>("#call-run")!;
    run.disabled = true;
    status.className = "status";
    status.textContent = `Running ${params["method"]} over ${params["transport"]}${params["fault"] ? ` with faults (${params["fault"]}): a lost message makes the caller wait out its deadline` : ""}…`;
    api<CallStory>("/api/call", params).then(
      (story) => {
        run.disabled = false;
        status.textContent = story.error ? `The call failed: ${story.error.code}: ${story.error.message}` : `Result: ${JSON.stringify(story.result)}`;
        show(result, story);
      },
      (err: Error) => {
        run.disabled = false;
        status.className = "status bad";
        status.textContent = `Could not run the call: ${err.message}`;
      },
    );
  });
}

let keyHandler: ((e: KeyboardEvent) => void) | undefined;

function show(result: HTMLElement, story: CallStory): void {
  let current = 0;
  const list = h("ol", { class: "steps", "aria-label": "Steps" });
  const detail = h("div", { "aria-live": "polite" });
  const counter = h("span", { class: "mono", id: "step-counter" });
  const prev = h("button", { type: "button", id: "step-prev", title: "previous step (←, p)" }, "◀ Previous");
  const next = h("button", { type: "button", id: "step-next", title: "next step (→, n)" }, "Next ▶");
  const buttons = story.steps.map((s, i) =>
    h("button", { type: "button", "data-step": s.n, onclick: () => go(i) }, h("span", { class: `side-${s.side}` }, `${s.n}. ${s.side}`), ` ${s.layer}: ${s.title}`),
  );
  list.append(...buttons.map((b) => h("li", {}, b)));
  const go = (i: number) => {
    current = Math.max(0, Math.min(story.steps.length - 1, i));
    buttons.forEach((b, j) => (j === current ? b.setAttribute("aria-current", "step") : b.removeAttribute("aria-current")));
    buttons[current]!.scrollIntoView({ block: "nearest" });
    const step = story.steps[current]!;
    detail.replaceChildren(stepDetail(step, story.steps.length));
    counter.textContent = `${current + 1} / ${story.steps.length}`;
    prev.disabled = current === 0;
    next.disabled = current === story.steps.length - 1;
    announce(`Step ${step.n}: ${step.side}, ${step.layer}: ${step.title}`);
  };
  prev.addEventListener("click", () => go(current - 1));
  next.addEventListener("click", () => go(current + 1));
  const keys = (e: KeyboardEvent) => {
    if (result.closest("[hidden]") || !result.isConnected) return;
    const t = e.target as HTMLElement;
    if (t.tagName === "INPUT" || t.tagName === "SELECT" || t.closest(".hex") || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "ArrowRight" || e.key === "n") go(current + 1);
    else if (e.key === "ArrowLeft" || e.key === "p") go(current - 1);
    else return;
    e.preventDefault();
  };
  // One story at a time answers the keys: the one shown last.
  if (keyHandler) document.removeEventListener("keydown", keyHandler);
  keyHandler = keys;
  document.addEventListener("keydown", keys);

  result.replaceChildren(
    h("h3", {}, story.title),
    h("p", { class: "muted" }, story.settings),
    ...(story.note ? [h("p", { class: "explain" }, story.note)] : []),
    h("div", { class: "call-layout" }, h("div", {}, h("h3", {}, `${story.steps.length} steps`), list), h("div", {}, h("div", { class: "stepper" }, prev, counter, next), detail)),
    layerBar(story),
    timeline(story),
    h("details", {}, h("summary", {}, "The server's dispatch table"), h("pre", {}, story.table)),
  );
  go(0);
}
