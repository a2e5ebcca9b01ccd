/**
 * The replay: Kubernetes played against a CSI driver, without Kubernetes.
 *
 * A CSI driver never sees a claim or a pod, only the calls the sidecars
 * and the kubelet make when those objects change. The replay makes that
 * visible and testable, in four moves:
 *
 *   loadExample / exampleScenario   deploy/examples/<name>/*.yaml, in order,
 *                                   with the hand-made steps between files
 *   deploymentFrom                  who serves which call, read from the
 *                                   rendered manifests
 *   discover, then plan             the steps: each Kubernetes change and the
 *                                   CSI calls it causes (plain JSON)
 *   run                             the calls made against a driver, with
 *                                   events for each step, call, reply, check
 *
 * ReplayHost starts the driver as the manifests run it (node plugin and
 * controller, each in a mount namespace of its own) and restarts the node
 * plugin as a new container would; a UI replaying against another driver
 * passes its own ReplayTarget to run instead.
 */
export { deploymentFrom, type Deployment, type Process } from "./deployment";
export { discover, discoveryStep } from "./discover";
export { plan, type DriverFacts, type PlanOptions } from "./plan";
export { freePort, ReplayHost, type ReplayHostOptions } from "./processes";
export { restartScenario, LAYOUTS, type Layout } from "./restart-scenario";
export { run, type ReplayEvent, type ReplayTarget, type RunResult } from "./run";
export { exampleScenario, loadExample, loadExamples, type Action, type Example, type Scenario } from "./scenario";
export { render } from "./render";
export type { Check, PlannedCall, PlannedCheck, PlannedItem, PlannedRecord, PlannedRestart, Step, Test } from "./steps";
