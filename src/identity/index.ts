// The Identity service: every CSI plugin serves it, in every mode.
import type { IdentityDefinition } from "../gen/csi";
import type { RpcTable } from "../server/rpc";
import { getPluginCapabilities } from "./get-plugin-capabilities";
import { getPluginInfo } from "./get-plugin-info";
import { probe } from "./probe";

export const identityRpcs: RpcTable<typeof IdentityDefinition> = { getPluginInfo, getPluginCapabilities, probe };
