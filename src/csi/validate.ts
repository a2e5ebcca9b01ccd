/**
 * Input rules shared by every RPC.
 *
 * CSI fields arrive from the network, so nothing in them is trusted. The
 * spec caps strings at 128 bytes and maps at 4 KiB; names and IDs end up in
 * file names and log lines, so they must not carry path separators, "..",
 * NUL or control characters. A call that breaks a rule is answered with
 * INVALID_ARGUMENT before anything is touched, so bad input can never leave
 * half-made state behind.
 */
import { invalidArgument } from "./errors";

export const MAX_STRING_BYTES = 128;
export const MAX_MAP_BYTES = 4096;
/** Linux PATH_MAX; target and staging paths are exempt from the 128-byte rule. */
export const MAX_PATH_BYTES = 4096;

/** A REQUIRED string field: present and non-empty. */
export function requireString(value: string | undefined, field: string): string {
  if (value === undefined || value === "") throw invalidArgument(`${field} is required`);
  return value;
}

/** A REQUIRED message field. */
export function requireMessage<T>(value: T | undefined, field: string): T {
  if (value === undefined || value === null) throw invalidArgument(`${field} is required`);
  return value;
}

// Printable ASCII minus "/" and "\": enough for every CO-made name we know
// (Kubernetes uses pvc-<uuid>, snapshot-<uuid>), and nothing that a file
// system or a terminal would read as structure.
const SAFE_TOKEN = /^[\x21-\x2e\x30-\x5b\x5d-\x7e]+$/;

/**
 * A name or an ID: 1..128 bytes of printable ASCII, no "/", no "\", and not
 * "." or "..". It never becomes a path by itself — backends hash names and
 * parse IDs — but rejecting hostile values at the door keeps them out of
 * logs and metadata too.
 */
export function checkToken(value: string | undefined, field: string): string {
  const v = requireString(value, field);
  if (Buffer.byteLength(v) > MAX_STRING_BYTES) {
    throw invalidArgument(`${field} is ${Buffer.byteLength(v)} bytes long; CSI allows at most ${MAX_STRING_BYTES}`);
  }
  if (!SAFE_TOKEN.test(v)) {
    throw invalidArgument(`${field} ${JSON.stringify(v)} may only contain printable ASCII without "/", "\\", spaces or control characters`);
  }
  if (v === "." || v === "..") throw invalidArgument(`${field} may not be "." or ".."`);
  return v;
}

/** A REQUIRED absolute path on the node (staging or target path). */
export function checkPath(value: string | undefined, field: string): string {
  const v = requireString(value, field);
  if (v.includes("\0")) throw invalidArgument(`${field} contains a NUL byte`);
  if (Buffer.byteLength(v) > MAX_PATH_BYTES) throw invalidArgument(`${field} is longer than ${MAX_PATH_BYTES} bytes`);
  if (!v.startsWith("/")) throw invalidArgument(`${field} must be an absolute path, got ${JSON.stringify(v)}`);
  if (v.split("/").includes("..")) throw invalidArgument(`${field} may not contain ".." components`);
  return v;
}

/** An OPTIONAL map<string,string> within the spec's 4 KiB limit. */
export function checkMap(map: Record<string, string> | undefined, field: string): Record<string, string> {
  const m = map ?? {};
  let bytes = 0;
  for (const [k, v] of Object.entries(m)) {
    if (k.includes("\0") || v.includes("\0")) throw invalidArgument(`${field} contains a NUL byte`);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (bytes > MAX_MAP_BYTES) throw invalidArgument(`${field} is ${bytes} bytes; CSI allows at most ${MAX_MAP_BYTES}`);
  return m;
}
