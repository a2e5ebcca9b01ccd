/**
 * The address of the driver's HTTP side door (--metrics-address).
 *
 * It follows the kubernetes-csi sidecars' --http-endpoint spelling:
 * "host:port", "[v6]:port", or ":port" for every interface. Parsed with the
 * other flags, before anything starts; the server itself (metrics-http.ts,
 * and node:http with it) is loaded only when the flag is given.
 */
export interface HttpAddress {
  /** undefined = every interface. */
  host: string | undefined;
  port: number;
}

export function parseHttpAddress(spec: string): HttpAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--metrics-address ${JSON.stringify(spec)} must be host:port, [ipv6]:port or :port`);
  const host = m[1] ?? m[2];
  return { host: host === "" ? undefined : host, port };
}
