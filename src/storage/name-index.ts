/**
 * CSI names and the IDs they were given, both ways.
 *
 * Where an ID is not a hash of the name alone (a shared volume's or
 * snapshot's names its share), a store keeps which ID each name got, so
 * that the same name asked for again elsewhere is seen, and forgets a
 * deleted ID's name in one step. Built from the records at start, kept by
 * create and delete.
 */
export class NameIndex {
  private readonly idOf = new Map<string, string>();
  private readonly nameOf = new Map<string, string>();

  /** The ID recorded under `name`, if any. */
  get(name: string): string | undefined {
    return this.idOf.get(name);
  }

  set(name: string, id: string): void {
    this.idOf.set(name, id);
    this.nameOf.set(id, name);
  }

  /** Forget `id`, and its name unless the name has since been given another ID. */
  forget(id: string): void {
    const name = this.nameOf.get(id);
    if (name === undefined) return;
    this.nameOf.delete(id);
    if (this.idOf.get(name) === id) this.idOf.delete(name);
  }
}
