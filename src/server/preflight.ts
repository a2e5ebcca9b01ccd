/**
 * Pre-flight: what the flags name, checked on disk before anything is made.
 *
 * driver-flags.ts checked the spelling of every flag; this checks the
 * places: the root can be made (its nearest existing ancestor is a
 * writable directory on a real file system, not /proc or a read-only
 * disk), the socket's directory exists, the kubelet directories are
 * directories, the mount program can be run, the socket group exists.
 * Only reads happen here — stat, access, realpath — so a refused start
 * leaves nothing behind, and no check can loop: each walks at most the
 * path's own components.
 */
import { accessSync, constants as fsc, lstatSync, readFileSync, realpathSync, statfsSync } from "node:fs";
import * as path from "node:path";
import { systemPathProblem } from "../csi/system-paths";
import { mountTable } from "../mount/mountinfo";
import { detectQuota } from "../backends/hostpath/quota";
import type { DriverArgs } from "./driver-flags";
import { FlagError } from "./driver-flags";

// statfs f_type of the kernel's pseudo file systems, where no volume can live.
const PSEUDO_FS: Record<number, string> = {
  0x9fa0: "proc",
  0x62656572: "sysfs",
  0x1cd1: "devpts",
  0x63677270: "cgroup2",
  0x27e0eb: "cgroup",
  0x64626720: "debugfs",
  0x73636673: "securityfs",
  0x74726163: "tracefs",
  0xcafe4a11: "bpf",
};

export interface Preflight {
  /** Things worth a warning line at start-up, not worth refusing to start. */
  warnings: string[];
  /** The socket's group id, when --socket-group named one. */
  socketGid: number | undefined;
  /** Why this process cannot mount, if it cannot (Probe reports it). */
  cannotMount: string | undefined;
}

export function preflight(args: DriverArgs): Preflight {
  const { config } = args;
  const warnings: string[] = [];
  const existing = checkRoot(config.root);
  if (config.defaultCapacityMode === "quota") {
    // Asked of the root's file system now (its nearest existing directory), not after the root is made.
    const { backend, reason } = detectQuota(existing, mountTable().containing(existing));
    if (!backend) throw new FlagError(`--default-capacity-mode quota, but ${reason}`);
  }
  if (args.endpoint.kind === "unix") checkSocketPath(args.endpoint.path, args.defaultEndpoint);
  if (config.mode !== "controller") {
    for (const dir of config.kubeletDirs) {
      const st = lstatSync(dir, { throwIfNoEntry: false });
      if (!st) {
        warnings.push(`--kubelet-dir ${dir} does not exist (yet): node calls are refused until it does`);
        continue;
      }
      const real = realpathSync(dir);
      const problem = systemPathProblem(real);
      if (problem) throw new FlagError(`--kubelet-dir ${dir} leads to ${real}: ${problem}`);
      if (!lstatSync(real).isDirectory()) throw new FlagError(`--kubelet-dir ${dir} is not a directory`);
    }
  }
  checkMountProgram(config.mountProgram);
  const socketGid = config.socketGroup === undefined ? undefined : groupId(config.socketGroup);
  const cannotMount = config.mode === "controller" ? undefined : mountCapabilityProblem();
  return { warnings, socketGid, cannotMount };
}

/**
 * The root is made with mkdir -p: its nearest existing ancestor must be a
 * writable directory on a disk. Returns that ancestor's real path.
 */
function checkRoot(root: string): string {
  let existing = root;
  let st = lstatSync(existing, { throwIfNoEntry: false });
  while (!st) {
    const parent = path.dirname(existing);
    if (parent === existing) throw new FlagError(`--root ${root}: no part of the path exists`);
    existing = parent;
    st = lstatSync(existing, { throwIfNoEntry: false });
  }
  let real: string;
  try {
    real = realpathSync(existing);
  } catch (err) {
    throw new FlagError(`--root ${root}: ${existing} cannot be resolved (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const realRoot = path.join(real, path.relative(existing, root));
  const problem = systemPathProblem(realRoot);
  if (problem) throw new FlagError(`--root ${root} leads to ${realRoot}: ${problem}`);
  if (!lstatSync(real).isDirectory()) {
    throw new FlagError(existing === root ? `--root ${root} exists and is not a directory` : `--root ${root}: ${existing} is not a directory`);
  }
  const fsType = PSEUDO_FS[statfsSync(real).type];
  if (fsType) throw new FlagError(`--root ${root} is on ${fsType}, a kernel pseudo file system; choose a directory on a disk`);
  try {
    accessSync(real, fsc.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "EROFS" ? "is on a read-only file system" : code === "EACCES" ? "is not writable by this user" : `cannot be written (${code})`;
    throw new FlagError(`--root ${root}: ${existing} ${why}`);
  }
  return real;
}

/** The socket's directory must exist (only the embedded default's .csi-lab may be made); a non-socket there is never replaced. */
function checkSocketPath(socket: string, isDefault: boolean): void {
  if (Buffer.byteLength(socket) > 107) throw new FlagError(`--endpoint: the socket path ${socket} is longer than the 107 bytes a unix socket address holds`);
  const dir = path.dirname(socket);
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) {
    if (isDefault && lstatSync(path.dirname(dir), { throwIfNoEntry: false })?.isDirectory()) return;
    throw new FlagError(`--endpoint: the socket's directory ${dir} does not exist; create it first (the driver does not make directories outside its root)`);
  }
  if (!st.isDirectory() && !(st.isSymbolicLink() && lstatSync(realpathSync(dir)).isDirectory())) throw new FlagError(`--endpoint: ${dir} is not a directory`);
  const sock = lstatSync(socket, { throwIfNoEntry: false });
  if (sock && !sock.isSocket()) throw new FlagError(`--endpoint: ${socket} exists and is not a socket; refusing to replace it`);
}

function checkMountProgram(program: string): void {
  const candidates = program.includes("/") ? [program] : (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":").filter(Boolean).map((d) => path.join(d, program));
  for (const c of candidates) {
    try {
      accessSync(c, fsc.X_OK);
      if (lstatSync(realpathSync(c)).isFile()) return;
    } catch {
      // try the next one
    }
  }
  throw new FlagError(`--mount-program ${program}: ${program.includes("/") ? "not an executable file" : "not found on PATH"} (util-linux's mount(8) is needed for shared volumes)`);
}

function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = "";
  try {
    text = readFileSync("/etc/group", "utf8");
  } catch {
    // no group database: only numeric ids work
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new FlagError(`--socket-group ${group}: no such group in /etc/group (give its numeric id instead)`);
}

const CAP_SYS_ADMIN = 21;

/** Why this process cannot call mount(2), or undefined. Mounting needs CAP_SYS_ADMIN. */
export function mountCapabilityProblem(status = readFileSync("/proc/self/status", "utf8")): string | undefined {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) return undefined; // cannot tell: let the first mount say
  if ((BigInt("0x" + m[1]!) >> BigInt(CAP_SYS_ADMIN)) & 1n) return undefined;
  return "this process lacks CAP_SYS_ADMIN, so it cannot mount volumes (run the node plugin as root, privileged)";
}
