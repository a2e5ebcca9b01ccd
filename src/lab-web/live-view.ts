/**
 * View 2 — a volume's life, live.
 *
 * A csi-lab driver started with `--metrics-address` streams every call it
 * serves from that address's /events (secrets redacted). The page connects
 * to one — on this machine, or a pod's port forwarded with `kubectl
 * port-forward` — through the lab's server, and draws the calls as they
 * come: a sequence diagram per volume, so a volume's life reads top to
 * bottom, Create → Stage → Publish → … → Unpublish → Unstage → Delete.
 * Calls about no single volume (Probe, GetCapacity, NodeGetInfo…) go under
 * "The driver".
 */
import type { CallEvent, CallOptionsList } from "../lab/protocol.js";
import { announce, api, apiUrl, h } from "./dom.js";
import { fieldText, sequenceHead, sequenceRow } from "./sequence.js";

const LIFE = [
  ["CreateVolume", "Create"],
  ["ControllerPublishVolume", "Attach"],
  ["NodeStageVolume", "Stage"],
  ["NodePublishVolume", "Publish"],
  ["NodeUnpublishVolume", "Unpublish"],
  ["NodeUnstageVolume", "Unstage"],
  ["ControllerUnpublishVolume", "Detach"],
  ["DeleteVolume", "Delete"],
] as const;

interface Group {
  readonly section: HTMLElement;
  readonly rows: HTMLElement;
  readonly chips: Map<string, HTMLElement>;
  name?: string;
  readonly heading: HTMLElement;
}

/** Who in Kubernetes makes a call: the sidecar or the kubelet. */
function callerOf(e: CallEvent): string {
  if (e.service === "Node") return "kubelet";
  if (/Snapshot/.test(e.method)) return "csi-snapshotter";
  if (/Expand/.test(e.method)) return "csi-resizer";
  if (/ControllerPublish|ControllerUnpublish/.test(e.method)) return "csi-attacher";
  if (/Modify/.test(e.method)) return "csi-resizer";
  return "csi-provisioner";
}

export function liveView(root: HTMLElement): void {
  const address = h("input", { id: "live-address", name: "address", size: 24, value: "127.0.0.1:9810", "aria-describedby": "live-help" });
  const connect = h("button", { class: "primary", type: "submit", id: "live-connect" }, "Connect");
  const status = h("p", { class: "status", role: "status", id: "live-status" }, "Not connected.");
  const diagram = h("div", { class: "seq", id: "live-diagram" }, sequenceHead("CO (sidecars, kubelet)"));
  const form = h("form", { class: "form" }, h("label", {}, "Driver's metrics address", address), connect);
  root.append(
    h("h2", {}, "A volume's life, live"),
    h(
      "p",
      { class: "explain" },
      "Each row is one call a running driver served, drawn as it happens: an arrow from Kubernetes (the CO: the sidecars and the kubelet) to the driver service that answered, with the status it gave. ",
      "Rows are grouped per volume, so a volume's life reads from top to bottom. Press a row to see its request and reply.",
    ),
    h("p", { id: "live-help", class: "muted" }, "Start the driver with --metrics-address 127.0.0.1:9810 (or port-forward a node plugin's metrics port) and connect to that address."),
    form,
    status,
    diagram,
  );
  void api<CallOptionsList>("/api/options").then((o) => (address.value = o.driver));

  let source: EventSource | undefined;
  let count = 0;
  const groups = new Map<string, Group>();
  const groupFor = (key: string, title: string): Group => {
    let g = groups.get(key);
    if (!g) {
      const heading = h("h3", {}, title);
      const chips = new Map(LIFE.map(([m, label]) => [m as string, h("span", {}, label)]));
      const rows = h("div", {});
      const section = h("section", { class: "seq-group", "data-volume": key }, heading, key === "" ? null : h("div", { class: "lifecycle", "aria-label": "stages reached" }, ...chips.values()), rows);
      g = { section, rows, chips, heading };
      groups.set(key, g);
      diagram.append(section);
    }
    return g;
  };
  const add = (e: CallEvent) => {
    count++;
    const key = e.volumeId ?? "";
    const g = groupFor(key, key ? `Volume ${key}` : "The driver");
    if (key && !g.name && e.fields["name"]) {
      g.name = e.fields["name"];
      g.heading.textContent = `Volume ${key} (claim's volume name ${g.name})`;
    }
    if (e.code === "OK") g.chips.get(e.method)?.classList.add("done");
    const fields = { ...e.fields };
    if (key) delete fields["volumeId"];
    g.rows.append(...sequenceRow({ caller: callerOf(e), service: e.service, method: e.method, fields: fieldText(fields), code: e.code, ms: e.ms, request: e.request, response: e.response, error: e.error }));
    status.textContent = `Connected to ${address.value}: ${count} call${count === 1 ? "" : "s"}, ${[...groups.keys()].filter(Boolean).length} volume(s).`;
    announce(`${e.method} ${e.code}`);
  };
  const stop = (text: string, bad = false) => {
    source?.close();
    source = undefined;
    connect.textContent = "Connect";
    status.className = bad ? "status bad" : "status";
    status.textContent = text;
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (source) return stop(`Disconnected from ${address.value}.`);
    status.className = "status";
    status.textContent = `Connecting to ${address.value}…`;
    const es = new EventSource(apiUrl("/api/live", { address: address.value }));
    source = es;
    connect.textContent = "Disconnect";
    es.onopen = () => {
      // After a reconnection the driver sends its recent calls again: start the picture afresh.
      for (const g of groups.values()) g.section.remove();
      groups.clear();
      count = 0;
      status.textContent = `Connected to ${address.value}: waiting for calls.`;
    };
    es.onmessage = (m) => add(JSON.parse(m.data as string) as CallEvent);
    es.addEventListener("gap", (m) => {
      const missed = (JSON.parse((m as MessageEvent).data as string) as { missed: number }).missed;
      diagram.append(h("p", { class: "bad" }, `… ${missed} calls not shown: the page fell behind, and the driver did not hold them for it.`));
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) stop(`Could not connect to a driver at ${address.value}: is it running with --metrics-address ${address.value}?`, true);
      else status.textContent = `Connection to ${address.value} lost; trying again…`;
    };
  });
}
