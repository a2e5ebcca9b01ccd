/**
 * What this node has promised, kept so that asking costs O(1).
 *
 * A volume whose size is enforced (a quota directory, an image, a block
 * volume) may grow until it reaches its size. The part of its size it does
 * not use yet is free by statfs, but spoken for: handing it to a new
 * volume would let the two together overfill the disk, and the one that
 * loses finds its writes failing although it is under its limit. So
 *
 *   what can still be promised = free space − Σ (size − used)
 *
 * over the enforced volumes; GetCapacity reports it and CreateVolume and
 * ControllerExpandVolume refuse sizes beyond it.
 *
 * Σ size changes only with create, delete and expand, and is kept exactly.
 * "Used" means owned alone: blocks a volume shares with a snapshot or a
 * clone (reflinks) may each still be rewritten into a new block, so they
 * are still owed. What each volume uses changes with every write, so it is
 * sampled: each volume's quota counter or its image's allocated blocks
 * (its extent map where the root shares extents), microseconds per volume,
 * re-read in the background when the last sample is older than a minute
 * and somebody asks — never while a call waits. Between samples a
 * volume that grew is counted twice (the answer errs low by what it wrote)
 * and one that shrank not at all (high by what it freed).
 *
 * At start-up the sums are rebuilt from the volumes' records, also in the
 * background; `ready` settles when that is done, and the calls that need
 * the figure wait for it.
 */
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { Holds } from "../../storage/holds";

/** How to measure one volume's usage (an image file or a quota): bytes it holds and shares with nothing. */
export interface UsageProbe {
  measure(): number | Promise<number>;
}

interface Entry {
  bytes: number;
  /** min(used, bytes) at the last sample. */
  used: number;
  probe: UsageProbe;
}

const SAMPLE_EVERY_MS = 60_000;
const SLICE = 256;

export class CapacityLedger {
  private readonly entries = new Map<string, Entry>();
  private promised = 0;
  private usedWithin = 0;
  private readonly holds = new Holds();
  private sampledAt = 0;
  private sampling = false;
  /** Volumes created or deleted while the start-up rebuild runs; it leaves them alone. */
  private touched: Set<string> | undefined = new Set();
  private building: Promise<void> = Promise.resolve();

  /** Settles when the start-up rebuild is done. */
  get ready(): Promise<void> {
    return this.building;
  }

  /**
   * Rebuild from the volumes on disk, in the background. `describe` reads a
   * volume's record and says what it promised (undefined: nothing).
   */
  rebuild(ids: readonly string[], describe: (id: string) => Promise<{ bytes: number; probe: UsageProbe } | undefined>): void {
    this.building = (async () => {
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (this.touched?.has(id)) continue;
        const d = await describe(id).catch(() => undefined);
        const used = d && (await safeMeasure(d.probe));
        if (d && used !== undefined && !this.touched?.has(id)) this.put(id, d.bytes, d.probe, used);
        if (i % SLICE === SLICE - 1) await yieldToEventLoop();
      }
      this.touched = undefined;
      this.sampledAt = Date.now();
    })();
  }

  /** Space promised to volumes and not used by them yet (plus creations in flight). */
  outstanding(): number {
    this.sampleIfStale();
    return Math.max(0, this.promised - this.usedWithin + this.holds.total);
  }

  /** Record a volume's promise (after create or expand); a new volume uses nothing yet. */
  set(id: string, bytes: number, probe: UsageProbe): void {
    this.touched?.add(id);
    const old = this.entries.get(id);
    this.put(id, bytes, probe, old?.used ?? 0);
  }

  remove(id: string): void {
    this.touched?.add(id);
    const old = this.entries.get(id);
    if (!old) return;
    this.promised -= old.bytes;
    this.usedWithin -= old.used;
    this.entries.delete(id);
  }

  /**
   * Hold `bytes` for an operation in flight (a create or an expansion that
   * passed its check but has not recorded its promise yet). Returns the
   * function that lets go of it.
   */
  reserve(bytes: number): () => void {
    return this.holds.hold(bytes);
  }

  bytesOf(id: string): number | undefined {
    return this.entries.get(id)?.bytes;
  }

  private put(id: string, bytes: number, probe: UsageProbe, used: number): void {
    const old = this.entries.get(id);
    if (old) {
      this.promised -= old.bytes;
      this.usedWithin -= old.used;
    }
    const within = Math.min(used, bytes);
    this.entries.set(id, { bytes, used: within, probe });
    this.promised += bytes;
    this.usedWithin += within;
  }

  private sampleIfStale(): void {
    if (this.sampling || this.touched || Date.now() - this.sampledAt < SAMPLE_EVERY_MS) return;
    this.sampling = true;
    void this.sample().finally(() => {
      this.sampling = false;
      this.sampledAt = Date.now();
    });
  }

  /** Re-read every volume's usage, a slice at a time. */
  async sample(): Promise<void> {
    let i = 0;
    for (const [id, e] of [...this.entries]) {
      if (this.entries.get(id) === e) {
        const used = Math.min(await safeMeasure(e.probe), e.bytes);
        // The entry may have been replaced (expanded) or removed while it was measured.
        if (this.entries.get(id) === e) {
          this.usedWithin += used - e.used;
          e.used = used;
        }
      }
      if (++i % SLICE === 0) await yieldToEventLoop();
    }
  }
}

async function safeMeasure(probe: UsageProbe): Promise<number> {
  try {
    return await probe.measure();
  } catch {
    return 0; // gone or unreadable: counts as unused, the careful side
  }
}
