/**
 * How a benchmark makes its node calls: on the one connection it keeps, or
 * as the kubelet makes them.
 *
 * The kubelet dials the driver's socket for every node call and closes the
 * connection after it (its CSI client makes a new gRPC connection per
 * call); the sidecars, and the stock client of issue 22, keep one. A
 * connection costs the driver an accept, an HTTP/2 session and its
 * teardown, which one kept connection never shows.
 */
import { connect, type CsiClient } from "../src/client/csi-client";

export type NodeCaller = <T>(call: (node: CsiClient["node"]) => Promise<T>) => Promise<T>;

/** Node calls on `shared`, or each on a connection of its own to `endpoint`, closed after it. */
export function nodeCaller(shared: CsiClient, endpoint: string, perCall: boolean): NodeCaller {
  if (!perCall) return (call) => call(shared.node);
  return async (call) => {
    const own = connect(endpoint);
    try {
      return await call(own.node);
    } finally {
      own.close();
    }
  };
}
