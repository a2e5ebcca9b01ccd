/** The offline kustomize lives with the replay (src/replay/kustomize-subset.ts), which the lab uses too. */
export * from "../../../src/replay/kustomize-subset";
