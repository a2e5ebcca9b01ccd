/**
 * The driver's HTTP side door: /metrics and /healthz.
 *
 * CSI itself is gRPC on a unix socket that only the kubelet and the
 * sidecars reach. Prometheus and the kubelet's HTTP probes need a TCP
 * port instead, so `--metrics-address host:port` opens one, serving
 *
 *   GET /metrics   the Prometheus text page (see metrics.ts)
 *   GET /healthz   200 "ok" when Probe would answer ready (the root is
 *                  writable), 503 with the reason when it would not
 *   GET /events    every CSI call as it finishes, as Server-Sent Events
 *                  (secrets redacted; see call-events.ts)
 *
 * and nothing else. HEAD answers each as GET would, without the body;
 * another method is 405, with Allow: GET, HEAD. The address is
 * --metrics-address (http-address.ts).
 *
 * /events shows IDs, paths and parameters, so it answers only a request
 * naming this machine (own-host.ts): a Host that is an IP literal,
 * localhost, or the machine's own name, and no Origin of another site's
 * page. A web page using DNS rebinding against 127.0.0.1:9810 is refused
 * (421, or 403 for the Origin). /metrics and /healthz answer any Host:
 * Prometheus scrapes by pod IP or Service name, and the kubelet probes.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { rootIsWritable } from "../identity/probe";
import type { CallEvents } from "./call-events";
import type { Driver } from "./driver";
import type { HttpAddress } from "./http-address";
import type { DriverMetrics } from "./metrics";
import { ownHost, type OwnHost } from "./own-host";

export interface MetricsServer {
  /** The address actually bound (port 0 becomes the real port). */
  readonly address: string;
  close(): Promise<void>;
}

export async function startMetricsServer(at: HttpAddress, driver: Driver, metrics: DriverMetrics, events?: CallEvents): Promise<MetricsServer> {
  // Set once the server listens, before any request is read.
  let own: OwnHost | undefined;
  const server = http.createServer((req, res) => {
    if (events && (req.method === "GET" || req.method === "HEAD") && (req.url ?? "/").split("?")[0] === "/events") {
      const refused = refusal(own, req);
      if (!refused) return events.serve(req, res);
      res.writeHead(refused.status, { "content-type": "text/plain", "cache-control": "no-store" });
      return void res.end(req.method === "HEAD" ? undefined : refused.body);
    }
    respond(req, driver, metrics).then(
      ({ status, type, body }) => {
        res.writeHead(status, { "content-type": type, "cache-control": "no-store", ...(status === 405 ? { allow: "GET, HEAD" } : {}) });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        driver.log.error("metrics endpoint failed", { path: req.url, error: String(err) });
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("internal error\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  // Any port: a forwarded one (kubectl port-forward 19810:9810) reaches us as localhost:19810.
  own = ownHost(at.host, addr, false);
  const address = `${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  driver.log.info("metrics listening", { address, paths: ["/metrics", "/healthz", ...(events ? ["/events"] : [])] });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        events?.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Why /events will not answer this request (own-host.ts), or undefined when it will. */
function refusal(own: OwnHost | undefined, req: http.IncomingMessage): { status: number; body: string } | undefined {
  if (!own?.host(req.headers.host)) return { status: 421, body: "/events answers only to an IP address, localhost or this machine's name\n" };
  if (!own.origin(req.headers.origin)) return { status: 403, body: "/events is not for pages from other sites\n" };
  return undefined;
}

interface Reply {
  status: number;
  type: string;
  body: string;
}

async function respond(req: http.IncomingMessage, driver: Driver, metrics: DriverMetrics): Promise<Reply> {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET" && req.method !== "HEAD") return { status: 405, type: "text/plain", body: "only GET and HEAD\n" };
  switch (path) {
    case "/metrics":
      return { status: 200, type: metrics.registry.contentType, body: await metrics.registry.metrics() };
    case "/healthz": {
      const problem = driver.mountProblem ?? (await rootIsWritable(driver.config.root));
      return problem === undefined
        ? { status: 200, type: "text/plain", body: "ok\n" }
        : { status: 503, type: "text/plain", body: `not ready: ${problem}\n` };
    }
    default:
      return { status: 404, type: "text/plain", body: "not found; try /metrics, /healthz or /events\n" };
  }
}
