/**
 * Bytes held for calls in flight: a create or a growth that passed its
 * check against what the node can still promise, and has not recorded its
 * size yet. Counting them in the next check is what keeps two calls at
 * once from both passing on the same room (the check, after its last
 * await, and the hold must then come in one synchronous step).
 */
export class Holds {
  private held = 0;

  /** Bytes held now. */
  get total(): number {
    return this.held;
  }

  /** Hold `bytes`; the function returned lets go of them (once, however often it is called). */
  hold(bytes: number): () => void {
    this.held += bytes;
    let holding = true;
    return () => {
      if (holding) this.held -= bytes;
      holding = false;
    };
  }
}
