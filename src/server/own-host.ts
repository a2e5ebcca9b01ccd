/**
 * Which Host a local HTTP server answers to: the defence against DNS rebinding.
 *
 * A web page can have the browser send requests anywhere, but may read
 * only the answers from its own origin (scheme, name, port). DNS
 * rebinding gets around that with a name: evil.example first resolves to
 * the attacker's server, which serves the page, then to 127.0.0.1, and
 * the page's requests reach a server on this machine while the browser
 * still counts them as evil.example's. What gives it away is the request
 * itself: it says `Host: evil.example:port`. So a server that holds
 * anything worth reading answers only when the Host is
 *   - an IP literal (a page can make the browser send one only from that
 *     address's own origin; rebinding needs a name), or
 *   - localhost (served on a loopback address or every interface), the
 *     name it was told to listen on, or, listening on every interface, the
 *     machine's own name.
 * A browser also names the page that asked in an Origin header (on
 * cross-origin requests, and some others): when there is one, its name
 * is held to the same rule, whatever its port.
 *
 * The lab (src/lab/server.ts) also wants the Host's port to be its own;
 * the driver's /events does not, since `kubectl port-forward 19810:9810`
 * reaches it with `Host: localhost:19810`.
 */
import { isIP, type AddressInfo } from "node:net";
import { hostname } from "node:os";

export interface OwnHost {
  /** A Host header that names this server. */
  host(header: string | undefined): boolean;
  /** No Origin header, or one whose name this server answers to. */
  origin(header: string | undefined): boolean;
}

/**
 * The rule for a server bound at `bound`, asked to listen on `given`
 * (undefined: every interface); `samePort`: the Host must carry the bound
 * port (80 when it carries none).
 */
export function ownHost(given: string | undefined, bound: AddressInfo, samePort: boolean): OwnHost {
  const everywhere = bound.address === "0.0.0.0" || bound.address === "::";
  const names = new Set<string>();
  if (given !== undefined) names.add(given.toLowerCase());
  if (everywhere || bound.address === "127.0.0.1" || bound.address === "::1") names.add("localhost");
  if (everywhere) names.add(hostname().toLowerCase());
  const ours = (name: string) => isIP(name) !== 0 || names.has(name);
  return {
    host: (header) => {
      // host:port, [v6]:port, or without the port when it is HTTP's 80.
      const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(header ?? "");
      if (!m || (samePort && Number(m[2] ?? 80) !== bound.port)) return false;
      return ours(m[1]!.replace(/^\[(.*)\]$/, "$1").toLowerCase());
    },
    origin: (header) => {
      if (header === undefined) return true;
      // "null" (a sandboxed frame, a file) and anything unreadable name no host of ours.
      let url: URL;
      try {
        url = new URL(header);
      } catch {
        return false;
      }
      return (url.protocol === "http:" || url.protocol === "https:") && ours(url.hostname.replace(/^\[(.*)\]$/, "$1"));
    },
  };
}
