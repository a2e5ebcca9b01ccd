/**
 * Places a storage driver never works in.
 *
 * A CSI node plugin runs as root, so any path it is handed — a target in a
 * request, a share in a StorageClass, a directory in a flag — could name
 * the machine's own files. Before anything else, every such path is checked
 * against this list: the kernel's pseudo file systems (/proc, /sys, /dev)
 * and the operating system's own trees (/etc, /usr, /boot, …) are refused
 * with everything under them, and the top-level directories that hold
 * everyone's data (/, /var, /home, /tmp, …) are refused as themselves —
 * a driver may be given a directory inside /var/lib, never /var/lib.
 */
import * as path from "node:path";

/** Refused with everything below them: the kernel's views and the system's own files. */
const SYSTEM_TREES = ["/proc", "/sys", "/dev", "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/** Refused as themselves only: directories that hold other programs' data side by side. */
const SHARED_PARENTS = new Set([
  "/",
  "/var",
  "/var/lib",
  "/var/tmp",
  "/var/run",
  "/var/log",
  "/home",
  "/root",
  "/run",
  "/tmp",
  "/srv",
  "/opt",
  "/mnt",
  "/media",
  "/snap",
]);

/** Is `p` equal to `dir` or below it? (Both absolute and normalised.) */
export function isAtOrUnder(p: string, dir: string): boolean {
  return p === dir || dir === "/" || p.startsWith(dir + "/");
}

/**
 * Why the absolute, normalised path `p` is a system location, or undefined
 * if it is an ordinary directory a driver may be given.
 */
export function systemPathProblem(p: string): string | undefined {
  if (SHARED_PARENTS.has(p)) return p === "/" ? "it is the root of the file system" : `${p} is a system directory`;
  const tree = SYSTEM_TREES.find((t) => isAtOrUnder(p, t));
  if (tree) return `${p} is ${p === tree ? "" : "inside "}${tree}, which belongs to the operating system`;
  return undefined;
}

/** Why `p` is not an absolute, normalised path (no "//", ".", ".." or trailing "/"), or undefined. */
export function cleanPathProblem(p: string): string | undefined {
  if (p.includes("\0")) return "it contains a NUL byte";
  if (!p.startsWith("/")) return "it is not an absolute path";
  if (p !== "/" && (p.endsWith("/") || path.posix.normalize(p) !== p)) return 'it is not a clean path (no "//", ".", ".." or trailing "/")';
  return undefined;
}
