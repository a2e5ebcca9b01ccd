/**
 * The driver's own directory on every share, beside the volumes and never
 * inside one:
 *
 *   <share>/.csi-lab/volumes/<key>.json   each volume's marker (store.ts)
 *   <share>/.csi-lab/snapshots/<key>.json  each snapshot's record, and <key>/ its content (share-snapshots.ts)
 *   <share>/.csi-lab/tmp/                  volumes and snapshots being made, renamed into place when whole
 *   <share>/.csi-lab/trash/                deleted volumes and snapshots, emptied after the delete's commit point
 *   <share>/.csi-lab/locks/<key>           what a create or delete holds, against another controller (share-locks.ts)
 *
 * The share agent (share-agent.ts) is what writes there; the driver names
 * it in its messages. A module of its own so that the driver need not load
 * the agent's code to know the name.
 */
export const META_DIR = ".csi-lab";
