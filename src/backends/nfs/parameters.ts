/**
 * StorageClass parameters of the shared (nfs) backend.
 *
 *   share             the export's path on `server`, or — without a server —
 *                     a local path already mounted on every node (an NFS,
 *                     CephFS, … mount made by the host). Required.
 *   server            the NFS server (host name or IP address).
 *   subDir            the volume's directory inside the share; may use
 *                     ${pvc.metadata.namespace}, ${pvc.metadata.name} and
 *                     ${pv.metadata.name}, which csi-provisioner passes
 *                     with --extra-create-metadata. Default: the volume's
 *                     name (the PV's name in Kubernetes).
 *   onDelete          delete (default) | retain | archive: what DeleteVolume
 *                     does with the directory.
 *   mountPermissions  mode of a new volume's directory, octal (default 0777).
 *   uid, gid          owner of a new volume's directory.
 *
 * A directory the driver made at subDir and kept (onDelete: retain) is
 * adopted as it is, content, mode and owner: with a template such as
 * ${pvc.metadata.namespace}/${pvc.metadata.name} and onDelete: retain, a
 * claim deleted and made again gets its data back. An empty directory is
 * adopted too; one holding data the driver did not make never is
 * (ALREADY_EXISTS): mount such data with a static PersistentVolume. The
 * share must be listed by --allow-share (docs/security.md).
 */
import { invalidArgument } from "../../csi/errors";
import { ON_DELETE, serverProblem, sharePathProblem, subDirProblem, type OnDelete, type SharedLocation } from "./volume-id";

const TEMPLATE_KEYS: Record<string, string> = {
  "pvc.metadata.namespace": "csi.storage.k8s.io/pvc/namespace",
  "pvc.metadata.name": "csi.storage.k8s.io/pvc/name",
  "pv.metadata.name": "csi.storage.k8s.io/pv/name",
};

const octal = (v: string) => /^[0-7]{3,4}$/.test(v);
const id = (v: string) => /^\d{1,10}$/.test(v) && Number(v) <= 0xfffffffe;

export const SHARED_RULES: Record<string, (v: string) => string | undefined> = {
  server: (v) => (v === "" ? "server may not be empty (omit it for a local share)" : serverProblem(v)),
  share: (v) => sharePathProblem(v),
  subDir: (v) => {
    const unknown = [...v.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]!).find((k) => !(k in TEMPLATE_KEYS));
    if (unknown !== undefined) return `subDir uses \${${unknown}}; known: ${Object.keys(TEMPLATE_KEYS).map((k) => `\${${k}}`).join(", ")}`;
    return subDirProblem(v.replace(/\$\{[^}]*\}/g, "x"));
  },
  onDelete: (v) => ((ON_DELETE as readonly string[]).includes(v) ? undefined : `onDelete ${JSON.stringify(v)} is not one of ${ON_DELETE.join(", ")}`),
  mountPermissions: (v) => (octal(v) ? undefined : `mountPermissions ${JSON.stringify(v)} must be 3 or 4 octal digits, e.g. "0775"`),
  uid: (v) => (id(v) ? undefined : `uid ${JSON.stringify(v)} must be a numeric user id`),
  gid: (v) => (id(v) ? undefined : `gid ${JSON.stringify(v)} must be a numeric group id`),
};

export interface SharedPlan {
  location: SharedLocation;
  onDelete: OnDelete;
  mode: number;
  uid?: number;
  gid?: number;
}

/** What a CreateVolume with these (already checked) parameters makes, and where. */
export function planShared(params: Record<string, string>, name: string): SharedPlan {
  const subDir = expandSubDir(params.subDir, params, name);
  const problem = subDirProblem(subDir);
  if (problem) throw invalidArgument(`subDir ${JSON.stringify(params.subDir)} gives ${JSON.stringify(subDir)}: ${problem}`);
  return {
    location: { server: params.server ?? "", share: params.share!, subDir },
    onDelete: (params.onDelete as OnDelete | undefined) ?? "delete",
    mode: parseInt(params.mountPermissions ?? "0777", 8),
    ...(params.uid !== undefined ? { uid: Number(params.uid) } : {}),
    ...(params.gid !== undefined ? { gid: Number(params.gid) } : {}),
  };
}

function expandSubDir(template: string | undefined, params: Record<string, string>, name: string): string {
  if (template === undefined) return name;
  return template.replace(/\$\{([^}]*)\}/g, (_, key: string) => {
    const value = params[TEMPLATE_KEYS[key]!];
    if (value === undefined || value === "") {
      throw invalidArgument(
        `subDir uses \${${key}}, but the request has no ${TEMPLATE_KEYS[key]} parameter: run csi-provisioner with --extra-create-metadata`,
      );
    }
    if (value.includes("/") || value === "." || value === "..") throw invalidArgument(`${TEMPLATE_KEYS[key]} ${JSON.stringify(value)} cannot be a directory name`);
    return value;
  });
}
