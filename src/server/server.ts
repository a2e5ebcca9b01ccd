/**
 * The gRPC server: CSI's transport.
 *
 * CSI is defined as gRPC services, so a plugin is a gRPC server. We accept
 * connections ourselves (net.Server on a unix socket or TCP port) and serve
 * gRPC on our own HTTP/2 (grpc-server.ts, http2/), which serves old
 * kubelets too: they send the socket's path as `:authority`, and our
 * server does not judge it. Owning the accept step also lets us remove a
 * stale socket file safely.
 *
 * Which services are served depends on --mode: a controller Deployment
 * serves Identity + Controller, a node DaemonSet Identity + Node, and a
 * single-node setup ("all") serves them all. The GroupController service
 * (group snapshots) goes with the Controller.
 */
import * as net from "node:net";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { ControllerDefinition, GroupControllerDefinition, IdentityDefinition, NodeDefinition } from "../gen/csi";
import { controllerRpcs } from "../controller";
import { groupControllerRpcs } from "../group-controller";
import { identityRpcs } from "../identity";
import { nodeRpcs } from "../node";
import type { Driver } from "./driver";
import { formatEndpoint, type Endpoint } from "./endpoint";
import { GrpcServer } from "./grpc-server";
import { interceptAll, withSafeDecoding, type CallRecord } from "./interceptor";
import { KeyedLocks } from "./locks";

export interface RunningServer {
  /** Where it listens (for tcp port 0, the real port). */
  readonly endpoint: Endpoint;
  /** Stop accepting, let in-flight calls finish (up to graceMs), remove the socket. */
  shutdown(graceMs?: number): Promise<void>;
}

export interface ServerOptions {
  onCall?: (rec: CallRecord) => void;
  /** Give this group read and write on the unix socket (0660); otherwise it is 0600. */
  socketGid?: number;
}

/** Linux's sockaddr_un.sun_path holds 108 bytes including the final NUL. */
const MAX_SOCKET_PATH = 107;

export async function startServer(driver: Driver, endpoint: Endpoint, opts: ServerOptions = {}): Promise<RunningServer> {
  const grpcServer = new GrpcServer({
    maxMessageBytes: 4 * 1024 * 1024,
    onSessionError: (err) => driver.log.debug("a connection failed", { error: err.message }),
    onRefused: (problem, path) => driver.log.info("refused a request with broken gRPC framing", { method: path, error: problem }),
    onHandlerThrew: (err) => driver.log.error("a handler threw instead of answering", { error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  });
  let inflight = 0;
  const deps = {
    driver,
    locks: new KeyedLocks(),
    onCall: opts.onCall,
    inflight: { start: () => void inflight++, end: () => void inflight-- },
  };
  const mode = driver.config.mode;
  grpcServer.addService(withSafeDecoding(IdentityDefinition), interceptAll("Identity", identityRpcs, deps));
  if (mode !== "node") grpcServer.addService(withSafeDecoding(ControllerDefinition), interceptAll("Controller", controllerRpcs, deps));
  if (mode !== "node") {
    grpcServer.addService(withSafeDecoding(GroupControllerDefinition), interceptAll("GroupController", groupControllerRpcs, deps));
  }
  if (mode !== "controller") grpcServer.addService(withSafeDecoding(NodeDefinition), interceptAll("Node", nodeRpcs, deps));

  const sockets = new Set<net.Socket>();
  const listener = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", (err) => driver.log.debug("a client connection failed", { error: err.message }));
    grpcServer.accept(socket);
  });

  let bound: Endpoint;
  if (endpoint.kind === "unix") {
    await prepareSocketPath(endpoint.path);
    // CSI has no authentication: whoever can connect can mount and delete
    // volumes. The socket is born owner-only (no window where it is open to
    // all), then opened to one group if asked.
    const umask = process.umask(0o177);
    try {
      await listen(listener, endpoint.path);
    } finally {
      process.umask(umask);
    }
    if (opts.socketGid !== undefined) {
      await fsp.chown(endpoint.path, process.getuid?.() ?? 0, opts.socketGid);
      await fsp.chmod(endpoint.path, 0o660);
    }
    bound = endpoint;
  } else {
    await listen(listener, endpoint.port, endpoint.host);
    const addr = listener.address() as net.AddressInfo;
    bound = { kind: "tcp", host: endpoint.host, port: addr.port };
  }
  driver.log.info("serving", { endpoint: formatEndpoint(bound), mode, driver: driver.config.driverName, node: driver.config.nodeId });

  let closing: Promise<void> | undefined;
  const shutdown = (graceMs = 30_000): Promise<void> => {
    closing ??= (async () => {
      driver.log.info("shutting down", { inflight });
      // Stop accepting. (close's callback would wait for every open
      // connection to end; gRPC's shutdown below is what ends them.)
      listener.close();
      const how = await grpcServer.close(graceMs);
      if (how === "forced") driver.log.warn("grace period over; cancelled remaining calls", { inflight });
      for (const s of sockets) s.destroy();
      if (bound.kind === "unix") await fsp.rm(bound.path, { force: true });
      driver.log.info("stopped");
    })();
    return closing;
  };
  return { endpoint: bound, shutdown };
}

function listen(server: net.Server, portOrPath: number | string, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if (typeof portOrPath === "string") server.listen(portOrPath, done);
    else server.listen(portOrPath, host, done);
  });
}

/**
 * Make the socket path usable: a socket left over from a dead driver
 * removed. A socket that still answers belongs to a live driver and is
 * never taken over; a path that is not a socket is never deleted. The
 * directory must exist (preflight.ts), except the embedded default's
 * .csi-lab, made here with the owner's rights only.
 */
async function prepareSocketPath(socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new Error(`socket path ${socketPath} is longer than the ${MAX_SOCKET_PATH} bytes a unix socket address holds`);
  }
  await fsp.mkdir(path.dirname(socketPath), { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  let st;
  try {
    st = await fsp.lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
  if (alive) throw new Error(`another process is serving on ${socketPath}`);
  await fsp.rm(socketPath, { force: true });
}
