/**
 * RPCs whose capability this driver does not advertise.
 *
 * The spec's answer to a call of an RPC the plugin does not offer is
 * UNIMPLEMENTED; a CO that read ControllerGetCapabilities never sends one.
 */
import { unimplemented } from "../csi/errors";
import { defineRpc, type Rpc } from "./rpc";

export function notOffered<Req, Res>(method: string, capability: string): Rpc<Req, Res> {
  return defineRpc<Req, Res>({
    async handle() {
      throw unimplemented(`${method} is not offered by this driver (it does not advertise ${capability})`);
    },
  });
}
