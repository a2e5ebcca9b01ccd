/**
 * Small helpers every view uses: build elements, call the lab's API, and
 * say things to screen readers.
 *
 * No framework: `h("button", { class: "primary", onclick }, "Run")` makes a
 * button, and the views keep references to the elements they change. A
 * class can read it all in the browser's developer tools.
 */

type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;
type Child = Node | string | number | null | undefined | false;

/** An element with attributes (on… are listeners; false/undefined are left out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "number" ? String(c) : c);
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: (SVGElement | string)[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** The token the server wrote into the page: every API call carries it. */
const token = document.querySelector<HTMLMetaElement>('meta[name="lab-token"]')?.content ?? "";

export function apiUrl(path: string, params: Record<string, string> = {}): string {
  const q = new URLSearchParams({ ...params, token });
  return `${path}?${q}`;
}

export async function api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
  const res = await fetch(apiUrl(path, params));
  const body = (await res.json()) as T | { error: string };
  if (!res.ok) throw new Error((body as { error?: string }).error ?? `HTTP ${res.status}`);
  return body as T;
}

/** Tell a screen reader what just changed (the live region in index.html). */
export function announce(text: string): void {
  const el = document.getElementById("announce");
  if (el) el.textContent = text;
}

export function formatMs(ms: number): string {
  return ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(3)} ms`;
}

/** A request or reply, as indented JSON. */
export function jsonBlock(title: string, value: unknown): HTMLElement {
  return h("div", {}, h("h4", {}, title), h("pre", {}, value === undefined ? "(none)" : JSON.stringify(value, null, 2)));
}
