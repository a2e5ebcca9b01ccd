/**
 * The driver's own metrics, in Prometheus' text format.
 *
 * The kubernetes-csi sidecars report how long *they* waited for the
 * driver; only the driver can say what it did. Prometheus scrapes a plain
 * HTTP page of counters, gauges and histograms; prom-client keeps them and
 * writes that page. What is measured:
 *
 *   csi_lab_rpc_requests_total{service,method,code}   every finished RPC
 *   csi_lab_rpc_errors_total{service,method,code}     the ones that failed
 *   csi_lab_rpc_duration_seconds{service,method}      latency histogram
 *   csi_lab_mount_duration_seconds{operation,result}  mount(2)/umount2(2) timings
 *   csi_lab_mount_table_reads_total                   whole mount tables read (their cost grows with the node's mounts)
 *   csi_lab_volumes{backend}                          volumes held by this process
 *   csi_lab_volume_capacity_bytes{backend}            their provisioned size, summed
 *   csi_lab_info{version,driver,node,mode}            always 1; the labels identify it
 *
 * plus the standard process_* and nodejs_* metrics. Nothing here runs on
 * the RPC path beyond incrementing counters: the volume gauges are worked
 * out when Prometheus asks (see VolumeInventory).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { Code, codeName } from "../csi/errors";
import { mountTableReads } from "../mount/mountinfo";
import type { MountObservation } from "../mount/observer";
import type { VolumeRecord } from "../storage/volume-record";
import type { Driver } from "./driver";
import type { CallRecord } from "./interceptor";

const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const MOUNT_BUCKETS = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];

// Calls after which a volume's recorded size may have changed.
const RESIZING_METHODS = new Set(["ControllerExpandVolume", "NodeExpandVolume", "ControllerModifyVolume"]);

/** What the inventory needs from a volume store (HostPathStore has it). */
export interface VolumeStore {
  page(after: string, limit: number): { ids: string[]; more: boolean };
  get(id: string): Promise<VolumeRecord | undefined>;
}

/**
 * Volumes and bytes per backend, kept current cheaply.
 *
 * Each scrape walks the stores' in-memory ID indexes (no disk access) and
 * reads the metadata only of volumes it has not seen yet; volumes that are
 * gone drop out. A volume whose size an RPC may have changed is forgotten
 * and read again on the next scrape.
 */
export class VolumeInventory {
  private readonly known = new Map<string, { backend: string; bytes: number }>();
  private running: Promise<Map<string, { volumes: number; bytes: number }>> | undefined;

  constructor(private readonly stores: readonly VolumeStore[]) {}

  forget(volumeId: string): void {
    this.known.delete(volumeId);
  }

  /** Totals per backend. Concurrent callers share one walk. */
  totals(): Promise<Map<string, { volumes: number; bytes: number }>> {
    this.running ??= this.walk().finally(() => (this.running = undefined));
    return this.running;
  }

  private async walk(): Promise<Map<string, { volumes: number; bytes: number }>> {
    const seen = new Set<string>();
    for (const store of this.stores) {
      let after = "";
      for (;;) {
        const { ids, more } = store.page(after, 1000);
        for (const id of ids) {
          seen.add(id);
          if (this.known.has(id)) continue;
          const rec = await store.get(id).catch(() => undefined);
          if (rec) this.known.set(id, { backend: rec.backend, bytes: rec.capacityBytes });
        }
        if (!more || ids.length === 0) break;
        after = ids[ids.length - 1]!;
      }
    }
    const out = new Map<string, { volumes: number; bytes: number }>();
    for (const [id, v] of this.known) {
      if (!seen.has(id)) {
        this.known.delete(id);
        continue;
      }
      const t = out.get(v.backend) ?? { volumes: 0, bytes: 0 };
      t.volumes++;
      t.bytes += v.bytes;
      out.set(v.backend, t);
    }
    return out;
  }
}

export interface DriverMetrics {
  readonly registry: Registry;
  /** Feed to startServer's onCall. */
  onCall(rec: CallRecord): void;
  /** Feed to setMountObserver. */
  onMount(o: MountObservation): void;
}

export function createMetrics(driver: Driver): DriverMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: "csi_lab_rpc_requests_total",
    help: "CSI calls answered, by service, method and gRPC status code.",
    labelNames: ["service", "method", "code"] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: "csi_lab_rpc_errors_total",
    help: "CSI calls answered with a status other than OK, by code.",
    labelNames: ["service", "method", "code"] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: "csi_lab_rpc_duration_seconds",
    help: "Time from receiving a CSI call to answering it.",
    labelNames: ["service", "method"] as const,
    buckets: RPC_BUCKETS,
    registers: [registry],
  });
  const mounts = new Histogram({
    name: "csi_lab_mount_duration_seconds",
    help: "Duration of mount and unmount system calls made by the driver.",
    labelNames: ["operation", "result"] as const,
    buckets: MOUNT_BUCKETS,
    registers: [registry],
  });

  let tableReads = 0;
  new Counter({
    name: "csi_lab_mount_table_reads_total",
    help: "Times the driver read the whole mount table (/proc/self/mountinfo) after it changed; each read costs more the more mounts the node has.",
    registers: [registry],
    collect() {
      const now = mountTableReads();
      this.inc(now - tableReads);
      tableReads = now;
    },
  });

  const inventory = new VolumeInventory(driver.backends.all);
  const perBackend = (name: string, help: string, pick: (t: { volumes: number; bytes: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["backend"] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const [backend, t] of await inventory.totals()) this.set({ backend }, pick(t));
      },
    });
  perBackend("csi_lab_volumes", "Volumes held by this driver process, by backend.", (t) => t.volumes);
  perBackend("csi_lab_volume_capacity_bytes", "Provisioned capacity of the volumes held by this driver process, by backend.", (t) => t.bytes);
  new Gauge({
    name: "csi_lab_info",
    help: "Always 1; the labels say which driver this is.",
    labelNames: ["version", "driver", "node", "mode"] as const,
    registers: [registry],
  }).set({ version: driver.version, driver: driver.config.driverName, node: driver.config.nodeId, mode: driver.config.mode }, 1);

  return {
    registry,
    onCall(rec) {
      const code = codeName(rec.code);
      requests.inc({ service: rec.service, method: rec.method, code });
      if (rec.code !== Code.OK) errors.inc({ service: rec.service, method: rec.method, code });
      latency.observe({ service: rec.service, method: rec.method }, rec.seconds);
      // Whatever the client got: a handler that went on past the call's deadline may have resized it all the same.
      if (rec.volumeId && RESIZING_METHODS.has(rec.method)) inventory.forget(rec.volumeId);
    },
    onMount(o) {
      mounts.observe({ operation: o.operation, result: o.ok ? "ok" : "error" }, o.seconds);
    },
  };
}
