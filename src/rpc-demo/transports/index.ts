/**
 * Pick a transport by name: the walkthrough, the CLI and the benchmark
 * start either end of any of them the same way.
 */
import type { Dispatcher } from "../call-ids/dispatch";
import type { FaultInjector } from "../faults/faults";
import type { Trace } from "../trace";
import { Http2Client } from "./http2-client";
import { Http2Server } from "./http2-server";
import { TcpClient, TcpServer } from "./tcp";
import type { ClientTransport, ServerTransport, TransportName } from "./transport";
import { UdpClient, UdpServer } from "./udp";

export interface ServeOptions {
  readonly host?: string;
  readonly port?: number;
  readonly faults?: FaultInjector;
  readonly trace?: Trace;
  readonly onCrash?: () => void;
  /** UDP only: keep replies to answer retransmissions (default true). */
  readonly duplicateCache?: boolean;
}

export function startServer(name: TransportName, dispatcher: Dispatcher, opts: ServeOptions = {}): Promise<ServerTransport> {
  switch (name) {
    case "tcp":
      return TcpServer.listen(dispatcher, opts);
    case "udp":
      return UdpServer.listen(dispatcher, opts);
    case "http2":
      return Http2Server.listen(dispatcher, opts);
  }
}

export interface ConnectOptions {
  readonly host?: string;
  readonly port: number;
  readonly faults?: FaultInjector;
  /** UDP only: first retransmission after this many ms. */
  readonly retransmitMs?: number;
  /** HTTP/2 only: show the frames on the wire in each call's trace. */
  readonly wire?: boolean;
}

export function connectClient(name: TransportName, opts: ConnectOptions): Promise<ClientTransport> {
  switch (name) {
    case "tcp":
      return TcpClient.connect(opts);
    case "udp":
      return UdpClient.connect(opts);
    case "http2":
      return Http2Client.connect(opts);
  }
}
