/**
 * What the deploy tests look at: the kustomizations a user applies, the
 * test fixture that switches every component on, and the examples.
 */
import { readdirSync, statSync } from "node:fs";
import * as path from "node:path";
import { ControllerServiceCapability_RPC_Type as Ctl } from "../../../src/gen/csi";
import type { Capabilities } from "./check-cluster";
import { readObjects, type K8sObject } from "./objects";

export const REPO = path.resolve(__dirname, "../../../..");
export const FIXTURES = path.join(REPO, "test/deploy/fixtures");
const EXAMPLES = path.join(REPO, "deploy/examples");

export interface Target {
  name: string;
  dir: string;
  /** The capabilities to check against: the driver's, or those the components need. */
  capabilities: (driver: Capabilities) => Capabilities;
}

const asIs = (c: Capabilities) => c;

/** With every component on, the driver must advertise what they need. */
export function withComponentCapabilities(c: Capabilities): Capabilities {
  // (PUBLISH_UNPUBLISH_VOLUME follows from the --enable-attach flag the attach component sets.)
  const extra = [Ctl.CREATE_DELETE_SNAPSHOT, Ctl.EXPAND_VOLUME, Ctl.MODIFY_VOLUME];
  return { ...c, controller: [...new Set([...c.controller, ...extra])] };
}

export const TARGETS: Target[] = [
  { name: "deploy/kubernetes (the base)", dir: path.join(REPO, "deploy/kubernetes"), capabilities: asIs },
  { name: "deploy/kind (the kind overlay)", dir: path.join(REPO, "deploy/kind"), capabilities: asIs },
  { name: "every component (test fixture)", dir: path.join(FIXTURES, "all-components"), capabilities: withComponentCapabilities },
];

export interface Example {
  name: string;
  files: string[];
  objects: K8sObject[];
}

/** Every example directory with its numbered step files, parsed. */
export function examples(root = EXAMPLES): Example[] {
  return readdirSync(root)
    .filter((n) => statSync(path.join(root, n)).isDirectory())
    .sort()
    .map((name) => {
      const files = readdirSync(path.join(root, name))
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((f) => path.join(root, name, f));
      return { name, files, objects: files.flatMap((f) => readObjects(f)) };
    });
}
