/**
 * The backends this driver offers: one list.
 *
 * A StorageClass picks one with its `backend` parameter (the first in the
 * list when it names none); a volume ID says which one holds the volume
 * (each backend's IDs have a shape of its own: `hp-…`, `nfs1:…`, `mem-…`).
 * Adding a backend is a folder beside these and a line in BACKENDS.
 */
import { invalidArgument } from "../csi/errors";
import type { DriverConfig } from "../server/driver";
import { mergePages } from "../storage/sorted-index";
import type { Logger } from "../server/logger";
import type { Backend, BackendFactory, EphemeralBackend } from "./backend";
import { hostpathBackend } from "./hostpath";
import { memoryBackend } from "./memory";
import { nfsBackend } from "./nfs";

/** Every backend; the first is the default. */
export const BACKENDS: readonly BackendFactory[] = [hostpathBackend, nfsBackend, memoryBackend];

export const BACKEND_NAMES: readonly string[] = BACKENDS.map((b) => b.name);

export class Backends {
  private constructor(readonly all: readonly Backend[]) {}

  static async open(config: DriverConfig, log: Logger): Promise<Backends> {
    const all: Backend[] = [];
    for (const factory of BACKENDS) all.push(await factory.open(config, log));
    return new Backends(all);
  }

  /** The backend a StorageClass's parameters name; INVALID_ARGUMENT for one this driver does not have. */
  forParameters(params: Record<string, string>): Backend {
    const name = params.backend ?? this.all[0]!.name;
    const b = this.all.find((x) => x.name === name);
    if (!b) throw invalidArgument(`backend ${JSON.stringify(name)} is not available (available: ${BACKEND_NAMES.join(", ")})`);
    return b;
  }

  /** The backend that holds volumes of this ID's shape, if any does. */
  forId(volumeId: string): Backend | undefined {
    return this.all.find((b) => b.ownsId(volumeId));
  }

  /** The backend that makes ephemeral inline volumes. */
  get ephemeral(): EphemeralBackend | undefined {
    return this.all.find((b) => b.ephemeral)?.ephemeral;
  }

  /** Every volume ID held, in ID order, after `after`: a page merged from each backend's index. */
  page(after: string, limit: number): { ids: string[]; more: boolean } {
    return mergePages(this.all.map((b) => b.page(after, limit)), limit);
  }
}
