/**
 * The duplicate-request cache: at-most-once over a lossy network.
 *
 * A UDP client that hears nothing cannot tell a lost request from a lost
 * reply, so it sends the request again with the same xid. If the first copy
 * did arrive, running it again would do the work twice — fine for Add,
 * wrong for Increment (or for "append this to the file"). So the server
 * remembers, per client and xid, the reply it sent: a repeat is answered
 * from the cache without running anything, and a repeat of a call still
 * running is ignored (its reply is on the way). NFS servers have done this
 * since the 1980s.
 *
 * The cache lives in memory and holds a bounded number of entries: a server
 * that restarts, or a retry that comes after its entry was evicted, runs
 * the call again. Only idempotent procedures are safe against that.
 */

export type CacheEntry = { readonly state: "in-progress" } | { readonly state: "done"; readonly reply: Buffer };

export class DuplicateRequestCache {
  private readonly entries = new Map<string, CacheEntry>();
  /** Repeats answered from the cache / ignored while running. */
  readonly stats = { replayed: 0, ignored: 0 };

  constructor(private readonly maxEntries = 4096) {}

  /** The key of a call: who sent it, its xid, and which procedure (so a reused xid is not mistaken). */
  static key(peer: string, xid: number, program: number, version: number, procedure: number): string {
    return `${peer}|${xid}|${program}/${version}/${procedure}`;
  }

  get(key: string): CacheEntry | undefined {
    return this.entries.get(key);
  }

  begin(key: string): void {
    this.set(key, { state: "in-progress" });
  }

  finish(key: string, reply: Buffer): void {
    this.set(key, { state: "done", reply });
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private set(key: string, entry: CacheEntry): void {
    this.entries.delete(key); // re-inserting moves it to the newest end
    this.entries.set(key, entry);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
