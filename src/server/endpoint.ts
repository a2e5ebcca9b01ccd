/**
 * Where the driver listens.
 *
 * CSI plugins normally listen on a unix socket: only processes on the same
 * machine (the kubelet, the sidecars in the same pod) can reach it, and the
 * file system's permissions guard it. The spelling follows the sidecars'
 * --csi-address / CSI_ENDPOINT convention: unix:///abs/path (or a bare
 * absolute path). tcp://host:port is accepted for debugging.
 */
import * as path from "node:path";

export type Endpoint = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export function parseEndpoint(spec: string): Endpoint {
  if (spec.startsWith("unix://")) return unixAt(spec.slice("unix://".length), spec);
  if (spec.startsWith("unix:")) return unixAt(spec.slice("unix:".length), spec);
  if (spec.startsWith("/")) return unixAt(spec, spec);
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/]+):(\d{1,5})\/?$/.exec(spec);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port > 65535) throw new Error(`endpoint ${spec}: port ${port} is out of range`);
    return { kind: "tcp", host: tcp[1]!.replace(/^\[|\]$/g, ""), port };
  }
  throw new Error(`endpoint ${JSON.stringify(spec)} is neither unix:///absolute/path nor tcp://host:port`);
}

function unixAt(p: string, spec: string): Endpoint {
  if (!path.isAbsolute(p)) throw new Error(`endpoint ${spec}: the socket path must be absolute`);
  return { kind: "unix", path: path.normalize(p) };
}

export function formatEndpoint(e: Endpoint): string {
  return e.kind === "unix" ? `unix://${e.path}` : `tcp://${e.host.includes(":") ? `[${e.host}]` : e.host}:${e.port}`;
}
