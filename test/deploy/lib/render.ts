/**
 * Rendering a kustomization: the replay's renderer (src/replay/render.ts),
 * which the lab uses too, so the checks and the replay read the same objects.
 */
export * from "../../../src/replay/render";
