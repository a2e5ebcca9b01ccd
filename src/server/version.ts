// The version reported by GetPluginInfo is the one in package.json, so the
// two can never disagree.
import pkg from "../../package.json";

export const version: string = pkg.version;
export const packageName: string = pkg.name;
