/**
 * --host and --port of the commands that listen or call on a network
 * (`csi-lab rpc serve`, `rpc call`, `csi-lab lab`).
 *
 * A host is an IP address or a DNS name, checked with the other flags
 * before anything starts. node:net would take more and do something else
 * with it: an empty host listens on every interface, and "[::1]" or
 * "127.0.0.1:80" fail only when the listener starts, in node's words. A
 * well-formed host that is not this machine's shows itself only when the
 * listener is bound; that, and a port in use, are said here in our words.
 * Shown with its port, an IPv6 address goes in brackets ([::1]:7000), as in
 * a URL: "::1:7000" could be the address ::1:7000 with no port.
 */
import { isIP } from "node:net";
import { FlagError } from "./driver-flags";

const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const DNS_NAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`);

/** Why `host` is not an IP address or a host name, or undefined. */
export function hostProblem(host: string): string | undefined {
  if (isIP(host) !== 0 || DNS_NAME.test(host)) return undefined;
  if (/^\[.*\]$/.test(host) && isIP(host.slice(1, -1)) === 6) return `an IPv6 address goes without brackets (${host.slice(1, -1)})`;
  return "not an IP address or a host name";
}

/** host:port as a URL writes it: an IPv6 address in brackets ("[::1]:7000"), anything else as it is. */
export function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** `--host` as given (default: loopback), checked. */
export function hostArg(value: string | undefined, listens: boolean): string {
  if (value === undefined) return "127.0.0.1";
  const problem = hostProblem(value);
  if (problem) throw new FlagError(`--host ${JSON.stringify(value)}: ${problem}${listens ? " (0.0.0.0: every interface)" : ""}`);
  return value;
}

/**
 * Our own one line for why a listener could not start. A host that is not
 * this machine's is the --host flag's fault (a FlagError, exit 2); a port
 * in use or reserved is the machine's state (exit 1).
 */
export function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  switch (err.code) {
    case "EADDRINUSE":
      return new Error(`port ${port} on ${host} is already in use: pick another --port, or stop what holds it`);
    case "EACCES":
      return new Error(`no permission to listen on port ${port} (ports below 1024 need root): pick another --port`);
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
      return new FlagError(`--host ${host} is not an address of this machine`);
    default:
      return new Error(`cannot listen on ${hostPort(host, port)}: ${err.message}`);
  }
}
