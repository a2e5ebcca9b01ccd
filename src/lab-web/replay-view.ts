/**
 * View 3 — replay without a cluster.
 *
 * Kubernetes never talks to a CSI driver about claims or pods: its
 * sidecars and the kubelet watch those objects and make CSI calls when
 * they change. Pick an example of deploy/examples and the lab plays it
 * against a real driver, started as the manifests start it (a node plugin
 * and a controller, in a private mount namespace and a scratch directory):
 * each Kubernetes change on the left — a claim created, a pod started, a
 * snapshot taken, a claim resized, a namespace deleted — and on the right
 * the calls it causes, who makes them, and what came back, with the checks
 * a user relies on: what one pod wrote, the next pod reads in its own mount.
 */
import type { ExampleInfo, ReplayMessage } from "../lab/protocol.js";
import { announce, api, apiUrl, h } from "./dom.js";
import { fieldText, sequenceHead, sequenceRow } from "./sequence.js";

/** The key fields of a planned request, for a row's label. */
function keyFields(request: unknown): string {
  const r = (request ?? {}) as Record<string, unknown>;
  const pick: Record<string, string> = {};
  for (const k of ["name", "volumeId", "sourceVolumeId", "snapshotId", "stagingTargetPath", "targetPath"]) if (typeof r[k] === "string" && r[k]) pick[k] = r[k] as string;
  return fieldText(pick);
}

export function replayView(root: HTMLElement): void {
  const picker = h("select", { id: "replay-example", name: "example" });
  const play = h("button", { class: "primary", type: "submit", id: "replay-run" }, "Replay");
  const status = h("p", { class: "status", role: "status", id: "replay-status" }, "Loading the examples…");
  const summary = h("p", { class: "muted", id: "replay-summary" });
  const steps = h("div", { id: "replay-steps" });
  const form = h("form", { class: "form" }, h("label", {}, "Example (deploy/examples)", picker), play);
  root.append(
    h("h2", {}, "Replay without a cluster"),
    h(
      "p",
      { class: "explain" },
      "On the left, a change to Kubernetes objects, as `kubectl apply` of the example's files makes it; on the right, the CSI calls that change causes — made by the external-provisioner, snapshotter, resizer, attacher or the kubelet — against a real csi-lab driver, with the status each got. ",
      "Green checks are what a user relies on: a pod's files are there for the next pod, a restored volume holds the snapshot's data. Press a call to see its request and reply.",
    ),
    form,
    summary,
    status,
    steps,
  );
  let list: ExampleInfo[] = [];
  void api<ExampleInfo[]>("/api/examples").then((examples) => {
    list = examples;
    picker.append(...examples.map((e) => h("option", { value: e.name, selected: e.name === "pvc-pod" }, e.name)));
    describe();
    status.textContent = "Pick an example and press “Replay”.";
  });
  const describe = () => {
    const e = list.find((x) => x.name === picker.value);
    summary.textContent = e ? `${e.summary} Files: ${e.files.join(", ")}.` : "";
  };
  picker.addEventListener("change", describe);

  let source: EventSource | undefined;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (source) return;
    steps.replaceChildren();
    play.disabled = true;
    status.className = "status";
    status.textContent = `Starting the driver for ${picker.value}…`;
    const stepEls = new Map<number, HTMLElement>();
    let calls = 0;
    let lastRequest: unknown;
    const es = new EventSource(apiUrl("/api/replay", { example: picker.value }));
    source = es;
    const end = (text: string, ok: boolean) => {
      es.close();
      source = undefined;
      play.disabled = false;
      status.className = ok ? "status ok" : "status bad";
      status.textContent = text;
      steps.dataset["done"] = ok ? "ok" : "failed";
      announce(text);
    };
    const target = (n: number) => stepEls.get(n) ?? steps;
    es.onmessage = (m) => {
      const msg = JSON.parse(m.data as string) as ReplayMessage;
      switch (msg.type) {
        case "started":
          status.textContent = `Replaying ${msg.example} (driver's files in ${msg.scratch}, removed at the end)…`;
          steps.dataset["scratch"] = msg.scratch;
          return;
        case "step": {
          const calls = h("div", { class: "seq" }, sequenceHead("Kubernetes component"));
          const el = h(
            "section",
            { class: "replay-step", "data-step": msg.step.n, "aria-label": `step ${msg.step.n}: ${msg.step.change}` },
            h("div", { class: "k8s" }, h("p", { class: "change" }, `${msg.step.n}. ${msg.step.change}`), msg.step.file ? h("p", { class: "muted" }, `from ${msg.step.file}`) : null, ...msg.step.notes.map((n) => h("p", {}, n))),
            calls,
          );
          stepEls.set(msg.step.n, calls);
          steps.append(el);
          el.scrollIntoView({ block: "nearest" });
          return;
        }
        case "call":
          lastRequest = msg.request; // calls are made one after another: its reply comes next
          return;
        case "reply":
          calls++;
          target(msg.step).append(
            ...sequenceRow({ caller: msg.call.caller, service: msg.call.service, method: msg.call.method, fields: keyFields(lastRequest), code: msg.code, ms: msg.ms, request: lastRequest, response: msg.reply, error: msg.message }),
          );
          return;
        case "skipped":
          target(msg.step).append(h("p", { class: "check muted" }, `skipped: ${msg.reason}`));
          return;
        case "record":
          target(msg.step).append(h("p", { class: "check muted" }, `${msg.what} (${Object.entries(msg.set).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ")})`));
          return;
        case "device":
          target(msg.step).append(
            h("p", { class: "check muted" }, msg.action === "map" ? `the kubelet maps the device at ${msg.path} and holds it open with ${msg.loop}` : `the kubelet detaches ${msg.loop} and unmaps the device at ${msg.path}`),
          );
          return;
        case "restart":
          target(msg.step).append(h("p", { class: "check" }, `↻ the ${msg.process} plugin restarted (${msg.ms} ms), in a new mount namespace, as a new container would`));
          return;
        case "check":
        case "cleanup":
          target(msg.step).append(h("p", { class: `check ${msg.ok ? "ok" : "bad"}`, "data-check": msg.ok ? "ok" : "failed" }, `${msg.ok ? "✓" : "✗"} ${msg.type === "check" ? msg.what : `clean-up of ${msg.path}`}: ${msg.detail}`));
          return;
        case "done":
          end(msg.ok ? `Done: ${calls} calls, every one answered as Kubernetes needs, every check held.` : `The replay failed: ${msg.failures.join("; ")}`, msg.ok);
          return;
        case "error":
          end(`The replay could not run: ${msg.message}`, false);
          return;
      }
    };
    es.onerror = () => {
      if (source === es) end("The connection to the lab was lost.", false);
    };
  });
}
