/**
 * GetPluginInfo: who this plugin is.
 *
 * The name is the key everything else hangs on: a StorageClass's
 * `provisioner`, the CSIDriver object and the node-driver-registrar all use
 * it, and sidecars refuse to work with a plugin whose name changes.
 */
import type { GetPluginInfoRequest, GetPluginInfoResponse } from "../gen/csi";
import { defineRpc } from "../server/rpc";

export const getPluginInfo = defineRpc<GetPluginInfoRequest, GetPluginInfoResponse>({
  async handle(_req, { driver }) {
    return {
      name: driver.config.driverName,
      vendorVersion: driver.version,
      // The manifest is free-form; ours says what this process serves.
      manifest: { mode: driver.config.mode, backends: driver.backends.all.map((b) => b.name).join(",") },
    };
  },
});
