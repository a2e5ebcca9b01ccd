/**
 * Secrets never reach a log line.
 *
 * csi.proto marks credential fields with the option (csi_secret). In CSI
 * v1.12 every such field is a map named `secrets` (a unit test checks that
 * against proto/csi.proto, so a future field with another name would fail
 * it). Their values are replaced, keys kept: an operator still sees which
 * secret was passed, never what it says.
 */
export const REDACTED = "***stripped***";

export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === "secrets" && typeof v === "object" && v !== null) {
      out[k] = Object.fromEntries(Object.keys(v).map((key) => [key, REDACTED]));
    } else {
      out[k] = redact(v);
    }
  }
  return out;
}
