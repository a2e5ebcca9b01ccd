/**
 * The live view's server side: the page reads a driver's call stream
 * through the lab, so it stays same-origin (a browser would not let a page
 * from one port read another port's stream without CORS headers, which the
 * driver need not send).
 *
 * The address is one the user typed — a driver on this machine started
 * with `--metrics-address 127.0.0.1:9810`, or a pod's port forwarded with
 * `kubectl port-forward` — and only its `/events` is ever fetched. The
 * driver answers /events only to an IP address, localhost or its machine's
 * own name (src/server/own-host.ts); what it says when it refuses is passed on.
 */
import * as http from "node:http";

/** host:port or [v6]:port, nothing else (no path, no scheme). */
export function parseDriverAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`a driver's metrics address is host:port (its --metrics-address), not ${JSON.stringify(text)}`);
  return { host: m[1] ?? m[2]!, port };
}

export function proxyEvents(address: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  let at: { host: string; port: number };
  try {
    at = parseDriverAddress(address);
  } catch (err) {
    res.writeHead(400, { "content-type": "text/plain" });
    res.end(`${(err as Error).message}\n`);
    return;
  }
  const upstream = http.get({ host: at.host, port: at.port, path: "/events", headers: { accept: "text/event-stream" } }, (up) => {
    if (up.statusCode !== 200) {
      // A csi-lab driver says why in one line: a name it does not answer to is 421 (connect by IP or localhost).
      let said = "";
      up.setEncoding("utf8").on("data", (c: string) => {
        said += c;
        if (said.length > 512) up.destroy();
      });
      up.on("close", () => {
        if (res.headersSent) return;
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`the driver at ${address} answered ${up.statusCode} for /events: ${said.slice(0, 512).trim() || "is it csi-lab with --metrics-address?"}\n`);
      });
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
    up.pipe(res);
    up.on("end", () => res.end());
  });
  upstream.setTimeout(5000, () => {
    // Only the connection must come quickly; a quiet stream is fine once it is open.
    if (!res.headersSent) upstream.destroy(new Error("no answer in 5 s"));
  });
  upstream.on("response", () => upstream.setTimeout(0));
  upstream.on("error", (err) => {
    if (res.headersSent) return void res.end();
    res.writeHead(502, { "content-type": "text/plain" });
    res.end(`cannot reach a driver at ${address}: ${err.message}\n`);
  });
  req.socket.once("close", () => upstream.destroy());
}
