/**
 * The lab's page: three views of what a CSI driver does, for a classroom.
 *
 *   1. One call, three layers — the RPC playground's walkthrough, drawn
 *   2. A volume's life, live — a running driver's calls as a sequence diagram
 *   3. Replay without a cluster — Kubernetes' calls for an example, next to
 *      the object changes that caused them
 *
 * This module wires the tabs (click, or the keys 1/2/3; arrow keys inside
 * the tab list, as a tab list should), and the light/dark switch (t), which
 * follows the system's preference until it is used.
 */
import { callView } from "./call-view.js";
import { liveView } from "./live-view.js";
import { replayView } from "./replay-view.js";

const views = [
  { tab: "tab-call", panel: "view-call", make: callView },
  { tab: "tab-live", panel: "view-live", make: liveView },
  { tab: "tab-replay", panel: "view-replay", make: replayView },
] as const;

const made = new Set<string>();

function show(i: number, focus = false): void {
  views.forEach((v, j) => {
    const tab = document.getElementById(v.tab)!;
    const panel = document.getElementById(v.panel)!;
    tab.setAttribute("aria-selected", String(i === j));
    tab.tabIndex = i === j ? 0 : -1;
    panel.hidden = i !== j;
    if (i === j && !made.has(v.panel)) {
      made.add(v.panel);
      v.make(panel);
    }
  });
  if (focus) document.getElementById(views[i]!.tab)!.focus();
  history.replaceState(null, "", `#${views[i]!.panel.slice(5)}`);
}

function setTheme(dark: boolean): void {
  document.documentElement.classList.toggle("dark", dark);
  const button = document.getElementById("theme")!;
  button.setAttribute("aria-pressed", String(dark));
  button.textContent = dark ? "Light" : "Dark";
}

function typing(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement;
  return t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA";
}

views.forEach((v, i) => {
  const tab = document.getElementById(v.tab)!;
  tab.addEventListener("click", () => show(i));
  tab.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight") show((i + 1) % views.length, true);
    else if (e.key === "ArrowLeft") show((i + views.length - 1) % views.length, true);
  });
});
document.getElementById("theme")!.addEventListener("click", () => setTheme(!document.documentElement.classList.contains("dark")));
document.addEventListener("keydown", (e) => {
  if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "1" || e.key === "2" || e.key === "3") show(Number(e.key) - 1, true);
  else if (e.key === "t") setTheme(!document.documentElement.classList.contains("dark"));
});

const params = new URLSearchParams(location.search);
setTheme(params.get("theme") === "dark" || (params.get("theme") !== "light" && matchMedia("(prefers-color-scheme: dark)").matches));
const start = views.findIndex((v) => `#${v.panel.slice(5)}` === location.hash);
show(start >= 0 ? start : 0);
