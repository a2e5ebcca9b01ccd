/**
 * Kubernetes objects as the deploy checks see them: the replay's reader
 * (src/replay/k8s-objects.ts), so the checks and the replay parse the
 * manifests the same way.
 */
export * from "../../../src/replay/k8s-objects";
