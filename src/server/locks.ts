/**
 * One operation per volume at a time.
 *
 * The CO promises at most one call in flight per volume, but after a crash
 * or a timeout it may send a second one while the first still runs. Two
 * CreateVolumes racing on one name, or a DeleteVolume under a NodeStage,
 * would corrupt state; the CSI answer is to refuse the second call with
 * ABORTED, which tells the CO to back off and retry. Locks are per key (a
 * volume ID, a name), so calls on different volumes never wait for each
 * other — unlike one global mutex.
 */
export class KeyedLocks {
  private readonly held = new Map<string, string>();

  /** Take every key or none; returns the key already held by someone else, if any. */
  tryAcquire(keys: readonly string[], holder: string): string | undefined {
    for (const k of keys) {
      if (this.held.has(k)) return k;
    }
    for (const k of keys) this.held.set(k, holder);
    return undefined;
  }

  holderOf(key: string): string | undefined {
    return this.held.get(key);
  }

  release(keys: readonly string[]): void {
    for (const k of keys) this.held.delete(k);
  }

  get size(): number {
    return this.held.size;
  }
}
