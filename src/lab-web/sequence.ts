/**
 * A sequence diagram of CSI calls, one row per call.
 *
 * CSI has one caller, the container orchestrator ("CO": in Kubernetes, the
 * sidecars beside the driver and the kubelet on each node), and three
 * services in the driver: Identity (who are you, are you ready), Controller
 * (volumes as objects: create, delete, snapshot, expand — no node needed)
 * and Node (a volume on this machine: stage it once, publish it into each
 * pod). Each row is an arrow from the caller to the service that answered,
 * labelled with the method, its key fields and the status that came back.
 * Activating a row (click, Enter or Space) shows the request and the reply.
 */
import { h, jsonBlock } from "./dom.js";

export const SERVICES = ["Identity", "Controller", "Node"] as const;

export interface SequenceCall {
  readonly caller: string;
  readonly service: string;
  readonly method: string;
  /** "name=pvc-1 node=n1" */
  readonly fields: string;
  readonly code: string;
  readonly ms: number;
  readonly request: unknown;
  readonly response?: unknown;
  readonly error?: string;
}

export function sequenceHead(callerTitle: string): HTMLElement {
  return h("div", { class: "seq-head", "aria-hidden": "true" }, h("div", {}, callerTitle), ...SERVICES.map((s) => h("div", {}, s)));
}

/** One call as a row; a second element, after it, holds its details when opened. */
export function sequenceRow(c: SequenceCall): HTMLElement[] {
  const col = Math.max(0, SERVICES.indexOf(c.service === "GroupController" ? "Controller" : (c.service as (typeof SERVICES)[number])));
  const ok = c.code === "OK";
  const text = `${c.method}${c.fields ? ` ${c.fields}` : ""}`;
  const row = h(
    "button",
    { type: "button", class: `seq-row${ok ? "" : " failed"}`, "aria-expanded": "false", "data-method": c.method, "data-code": c.code, "aria-label": `${c.caller} calls ${c.service} ${text}: ${c.code} in ${c.ms} ms` },
    h("span", { class: "who", style: "grid-column: 1" }, c.caller),
    h(
      "span",
      { class: "seq-arrow", style: `grid-column: 2 / ${col + 3}` },
      h("span", { class: "label" }, h("b", {}, c.method), c.fields ? ` ${c.fields}` : "", " → ", h("span", { class: "code" }, c.code), ` ${c.ms} ms`),
      h("span", { class: "line" }),
    ),
  );
  const details = h("div", { class: "details", hidden: true });
  row.addEventListener("click", () => {
    const open = row.getAttribute("aria-expanded") !== "true";
    row.setAttribute("aria-expanded", String(open));
    details.hidden = !open;
    if (open && details.childElementCount === 0) {
      details.append(
        h("p", {}, `${c.caller} → ${c.service}.${c.method}: ${c.code}${c.error ? ` — ${c.error}` : ""} (${c.ms} ms). Secrets are shown as ***stripped***: the driver never sends them.`),
        jsonBlock("Request", c.request),
        jsonBlock("Reply", c.response),
      );
    }
  });
  return [row, details];
}

/** Short key fields for a label: long IDs and paths keep their ends. */
export function fieldText(fields: Readonly<Record<string, string>>): string {
  const short = (v: string) => (v.length > 34 ? `${v.slice(0, 12)}…${v.slice(-18)}` : v);
  const names: Record<string, string> = { volumeId: "volume", sourceVolumeId: "source", stagingTargetPath: "staging", targetPath: "target", snapshotId: "snapshot", nodeId: "node", name: "name" };
  return Object.entries(fields)
    .map(([k, v]) => `${names[k] ?? k}=${short(v)}`)
    .join(" ");
}
