/**
 * What the driver advertises, taken from the driver's code: the
 * Controller and Node capability lists it answers with, and the plugin
 * capabilities its GetPluginCapabilities handler returns for a driver
 * serving every service.
 */
import { CONTROLLER_CAPABILITIES } from "../../../src/controller/controller-get-capabilities";
import type { PluginCapability_Service_Type } from "../../../src/gen/csi";
import { getPluginCapabilities } from "../../../src/identity/get-plugin-capabilities";
import { NODE_CAPABILITIES } from "../../../src/node/node-get-capabilities";
import type { CallContext } from "../../../src/server/rpc";
import type { Capabilities } from "./check-cluster";

export async function driverCapabilities(): Promise<Capabilities> {
  // The handler reads only driver.config.mode.
  const ctx = { driver: { config: { mode: "all" } } } as unknown as CallContext;
  const reply = await getPluginCapabilities.handle({}, ctx);
  const plugin = (reply.capabilities ?? [])
    .map((c) => c.service?.type)
    .filter((t): t is PluginCapability_Service_Type => t !== undefined);
  return { plugin, controller: CONTROLLER_CAPABILITIES, node: NODE_CAPABILITIES };
}
