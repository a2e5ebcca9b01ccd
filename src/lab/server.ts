/**
 * `csi-lab lab`: the lab's web server.
 *
 * It serves one page and its script and style, all from this package (no
 * CDN: the page works offline), and a small API the page calls:
 *
 *   GET /api/options          what the call form offers
 *   GET /api/call?…           one call run by the playground's engine → CallStory
 *   GET /api/live?address=    a driver's /events, passed through (SSE)
 *   GET /api/examples         deploy/examples, for the replay
 *   GET /api/replay?example=  one replay, as it runs (SSE)
 *
 * It listens on 127.0.0.1 unless told otherwise, and answers only requests
 * whose Host is the address it serves and API calls that carry the token
 * it wrote into the page: another web site open in the same browser cannot
 * start a replay (which mounts, as root) by sending the browser here.
 * A Host that is an IP address is always one of ours (a page can make the
 * browser send it only from that address's own origin; DNS rebinding needs
 * a name), so `--host 0.0.0.0` answers at every address of the machine;
 * the names it answers to are localhost, the --host given and, listening
 * everywhere, the machine's own name (src/server/own-host.ts, the rule the
 * driver's /events follows too).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { PROTO_DIR } from "../rpc-demo/codecs/schema";
import { hostPort } from "../server/host-flag";
import { ownHost as ownHostRule } from "../server/own-host";
import { callOptions, runCall } from "./call-api";
import { proxyEvents } from "./live-proxy";
import { examples, replayUnavailable, serveReplay, stopReplay } from "./replay-api";

const REPO = path.join(PROTO_DIR, "..");
/** The page's files: HTML and CSS as written, scripts as compiled (tsconfig.web.json). */
const STATIC: Record<string, { file: string; type: string }> = {
  "/": { file: "src/lab-web/index.html", type: "text/html; charset=utf-8" },
  "/lab.css": { file: "src/lab-web/lab.css", type: "text/css; charset=utf-8" },
};
const SCRIPTS = path.join(REPO, "dist/web/lab-web");

export interface LabOptions {
  readonly host: string;
  readonly port: number;
  /** The driver address the live view proposes. */
  readonly driver: string;
}

export interface RunningLab {
  readonly url: string;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
  // No framing by another page: a site the browser has open could otherwise show the lab,
  // token and all, under a disguise and have the user press its buttons (a replay runs as root).
  res.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
  });
  res.end(body);
}

const json = (res: http.ServerResponse, value: unknown, status = 200) => send(res, status, "application/json", JSON.stringify(value));

export async function startLab(opts: LabOptions): Promise<RunningLab> {
  const token = randomBytes(16).toString("hex");
  // Set once the server listens, before any request is read.
  let ownHost: (host: string | undefined) => boolean = () => false;
  const server = http.createServer((req, res) => {
    if (!ownHost(req.headers.host)) return send(res, 421, "text/plain", "this lab answers only to its own address\n");
    // A request target URL cannot read ("//[") is the client's mistake, never an exception that stops the lab.
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://lab");
    } catch {
      return send(res, 400, "text/plain", "not a URL\n");
    }
    if (req.method !== "GET") return send(res, 405, "text/plain", "only GET\n");
    const page = STATIC[url.pathname];
    if (page) {
      let body = readFileSync(path.join(REPO, page.file), "utf8");
      if (url.pathname === "/") body = body.replace("%TOKEN%", token);
      return send(res, 200, page.type, body);
    }
    if (url.pathname.startsWith("/js/")) {
      const name = url.pathname.slice(4);
      if (!/^[a-z-]+\.js$/.test(name)) return send(res, 404, "text/plain", "not found\n");
      try {
        return send(res, 200, "text/javascript; charset=utf-8", readFileSync(path.join(SCRIPTS, name)));
      } catch {
        return send(res, 404, "text/plain", `${name}: not built (npm run build)\n`);
      }
    }
    if (!url.pathname.startsWith("/api/")) return send(res, 404, "text/plain", "not found\n");
    if (url.searchParams.get("token") !== token) return send(res, 403, "text/plain", "missing or wrong token: reload the page\n");
    const q = url.searchParams;
    switch (url.pathname) {
      case "/api/options":
        return json(res, { ...callOptions(opts.driver), replay: replayUnavailable() ?? null });
      case "/api/call":
        runCall(q).then(
          (story) => json(res, story),
          (err: unknown) => json(res, { error: err instanceof Error ? err.message : String(err) }, 400),
        );
        return;
      case "/api/live":
        return proxyEvents(q.get("address") ?? "", req, res);
      case "/api/examples":
        return json(res, examples());
      case "/api/replay":
        return serveReplay(q.get("example") ?? "", req, res);
      default:
        return send(res, 404, "text/plain", "no such API\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  ownHost = ownHostRule(opts.host, addr, true).host;
  return {
    url: `http://${hostPort(addr.address, addr.port)}/`,
    close: async () => {
      await stopReplay();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
