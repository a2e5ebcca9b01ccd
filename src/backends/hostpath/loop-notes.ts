/**
 * Which loop devices the driver attached to a block volume's image: one note per device.
 *
 * A block volume's device outlives the call that attached it, and a crash can leave it attached with
 * nothing bound (src/mount/idle-loops.ts). Found by listing every loop device on the node, it would
 * cost each unstage, unpublish, retried stage and delete a look at every attached device — every
 * volume's, and every other program's. So the driver notes the device's number under the volume,
 * <root>/.loops/<id>/<n> (an empty file), once the device is attached and before it can outlive the
 * call (layouts/block.ts: before AUTOCLEAR is cleared — a crash before that detaches it), and forgets
 * it once the device is asked to detach (src/node/volume-owner.ts). Those calls look at the noted
 * devices only, each proven against the volume's image before it is bound or let go; a note that
 * outlived its device (a crash between the detach and the forgetting, a reboot) is forgotten when the
 * device proves to be another file's, or no one's. A delete forgets the volume's notes once its
 * devices are gone.
 *
 * Notes are not synced: only a crash of the node loses what was not written out, and that takes
 * every loop device with it. (The start-up sweep, leaked-loops.ts, looks at every device, notes or
 * none, once per start.)
 */
import { closeSync, constants as fsc, mkdirSync, openSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import * as path from "node:path";
import { Code, CsiError } from "../../csi/errors";
import type { LoopNotes } from "../../mount/idle-loops";

/** The notes of the volume whose data is at `dataDir` (<root>/data/<id>, as HostPathStore.dataDir built it). */
export function loopNotesOf(dataDir: string): LoopNotes & { clear(): void } {
  const dir = path.join(path.dirname(path.dirname(dataDir)), ".loops", path.basename(dataDir));
  return {
    list() {
      try {
        return readdirSync(dir)
          .filter((name) => /^\d+$/.test(name))
          .map(Number);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw err;
      }
    },
    add(n) {
      try {
        mkdirSync(dir, { recursive: true });
        closeSync(openSync(path.join(dir, String(n)), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600));
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? String(err);
        const message = `loop device /dev/loop${n} could not be noted for the volume in ${dir} (${why}); it was let go`;
        throw new CsiError(Code.INTERNAL, message, { cause: err });
      }
    },
    forget(n) {
      try {
        unlinkSync(path.join(dir, String(n)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    },
    clear() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
