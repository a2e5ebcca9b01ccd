/**
 * The driver's own directory on every share, beside the volumes and never
 * inside one:
 *
 *   <share>/.csi-lab/volumes/<key>.json   each volume's marker (store.ts)
 *   <share>/.csi-lab/tmp/                  volumes being made, renamed to their subDir when whole
 *   <share>/.csi-lab/trash/                deleted volumes, emptied after the delete's commit point
 *
 * The share agent (share-agent.ts) is what writes there; the driver names
 * it in its messages. A module of its own so that the driver need not load
 * the agent's code to know the name.
 */
export const META_DIR = ".csi-lab";
