/**
 * Mount flags as the kernel sees them.
 *
 * mount(8) takes words such as "ro,noexec,noatime"; the mount(2) system call
 * takes a bit mask (MS_RDONLY | MS_NOEXEC | MS_NOATIME) plus a string of
 * file-system-specific options. A bind mount has no file system of its own,
 * so only the generic, per-mount bits apply to it. This table is the
 * translation, and the list of what a StorageClass's mountOptions may say.
 */

// Values from <linux/mount.h>; they are ABI and never change.
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

export const MNT = { FORCE: 1, DETACH: 2, EXPIRE: 4, NOFOLLOW: 8 } as const;

/** Option word → [bits it sets, bits it clears]. */
const WORDS: Record<string, [number, number]> = {
  defaults: [0, 0],
  rw: [0, MS.RDONLY],
  ro: [MS.RDONLY, 0],
  nosuid: [MS.NOSUID, 0],
  suid: [0, MS.NOSUID],
  nodev: [MS.NODEV, 0],
  dev: [0, MS.NODEV],
  noexec: [MS.NOEXEC, 0],
  exec: [0, MS.NOEXEC],
  sync: [MS.SYNCHRONOUS, 0],
  async: [0, MS.SYNCHRONOUS],
  dirsync: [MS.DIRSYNC, 0],
  noatime: [MS.NOATIME, 0],
  atime: [0, MS.NOATIME],
  nodiratime: [MS.NODIRATIME, 0],
  diratime: [0, MS.NODIRATIME],
  relatime: [MS.RELATIME, 0],
  norelatime: [0, MS.RELATIME],
  strictatime: [MS.STRICTATIME, 0],
  lazytime: [MS.LAZYTIME, 0],
  nolazytime: [0, MS.LAZYTIME],
  nosymfollow: [MS.NOSYMFOLLOW, 0],
  // Every mount we make is a bind mount already; saying so is harmless.
  bind: [0, 0],
};

/** Flags a bind mount can carry, from mount option words. */
export interface BindFlags {
  /** Bits for the MS_REMOUNT|MS_BIND call that applies per-mount flags. */
  bits: number;
  /** The words as given, normalised, for comparing two requests. */
  words: string[];
}

/**
 * Parse mount_flags. Each entry may itself be a comma list ("ro,noexec").
 * Returns the error text for the first word a bind mount cannot honour.
 */
export function parseBindFlags(flags: readonly string[]): BindFlags | string {
  let bits = 0;
  const words: string[] = [];
  for (const entry of flags) {
    for (const raw of entry.split(",")) {
      const word = raw.trim();
      if (word === "") continue;
      const effect = WORDS[word];
      if (!effect) return `mount flag ${JSON.stringify(word)} is not supported for bind-mounted volumes (supported: ${Object.keys(WORDS).join(", ")})`;
      bits = (bits | effect[0]) & ~effect[1];
      words.push(word);
    }
  }
  return { bits, words: [...new Set(words)].sort() };
}

/** Per-mount options as /proc/self/mountinfo prints them, from bits. */
export function bitsToMountinfoWords(bits: number): string[] {
  const out: string[] = [bits & MS.RDONLY ? "ro" : "rw"];
  if (bits & MS.NOSUID) out.push("nosuid");
  if (bits & MS.NODEV) out.push("nodev");
  if (bits & MS.NOEXEC) out.push("noexec");
  if (bits & MS.NOATIME) out.push("noatime");
  return out;
}

/** The words of mount_flags, each entry possibly a comma list: trimmed, without empties, sorted, once each. */
export function mountWords(flags: readonly string[]): string[] {
  return [...new Set(flags.flatMap((e) => e.split(",")).map((w) => w.trim()).filter((w) => w !== ""))].sort();
}

// A file system option as mount(8) takes it: a word or key=value, nothing a shell or a parser could misread.
const FS_OPTION = /^[A-Za-z0-9_][A-Za-z0-9_.:+@=-]*$/;

/**
 * Flags for a file system mounted with mount(8) (an NFS export): the
 * generic per-mount words become bits for binds of it (as parseBindFlags),
 * every other word is an option for the file system ("nfsvers=4.1",
 * "hard"), passed to mount(8) as given. Returns the error text for a word
 * that is not a well-formed option.
 */
export function splitMountFlags(flags: readonly string[]): { bind: BindFlags; fsOptions: string[] } | string {
  const bindWords: string[] = [];
  const fsOptions: string[] = [];
  for (const word of mountWords(flags)) {
    if (WORDS[word]) bindWords.push(word);
    else if (FS_OPTION.test(word) && word.length <= 256) fsOptions.push(word);
    else return `mount flag ${JSON.stringify(word)} is not a well-formed mount option`;
  }
  const bind = parseBindFlags(bindWords);
  if (typeof bind === "string") return bind;
  return { bind, fsOptions };
}
