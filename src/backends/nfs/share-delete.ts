/**
 * DeleteVolume of a shared volume: its directory on the share removed,
 * archived or kept, as its onDelete says.
 *
 * A share is not the driver's alone, so a delete removes nothing on its
 * own say: only a directory whose marker (volume-marker.ts) proves that the
 * driver made it for this very volume ID, and that is still that directory
 * (same inode and birth time), is touched; anything else is NOT_FOUND and
 * stays as it is. The move into <share>/.csi-lab/trash (or to
 * archived-<name>-<time>) is the commit point: the agent proves again what
 * it moved, and puts back a directory swapped in meanwhile (share-trash.ts).
 * Then the marker goes (or, for retain, says the volume was let go), and the
 * trash is emptied — what a deadline leaves, the next delete empties. All of
 * it holds the location's share lock (share-locks.ts): another controller
 * creating, copying or deleting that directory at once answers ABORTED. A
 * delete done removes the lock's file as it lets go.
 */
import { notFound } from "../../csi/errors";
import { META_DIR } from "./share-layout";
import { shareErrno } from "./share-io";
import { describeShare, volumeDirError } from "./share-mounts";
import { busy, type SharedStore } from "./store";
import { MARKER_VERSION, readMarker, sameDirectory, type Marker, type Probed } from "./volume-marker";
import type { SharedVolumeId } from "./volume-id";

/**
 * DeleteVolume: what onDelete says — remove the directory, rename it to
 * archived-<name>-<time>, or leave it — then forget the volume. Returns
 * what was done, for the log. Nothing is removed or renamed unless the
 * marker proves that the driver made this directory for this very ID
 * (and the directory is still the one it made: same inode and birth time); otherwise
 * NOT_FOUND, and everything stays as it is. A directory that is gone
 * needs no proof: the volume was deleted, and this is a retry.
 */
export async function deleteSharedVolume(store: SharedStore, volumeId: string, id: SharedVolumeId): Promise<string> {
  const share = id.form === "inline" ? id.location : id.share;
  const refused = store.notAllowed(share);
  if (refused) throw notFound(`volume ${volumeId} is not one this driver may delete, and nothing was touched: ${refused}`);
  const loc = await store.locate(id);
  let done = "nothing: no record of it";
  if (loc) {
    const what = `directory ${loc.subDir} on ${describeShare(loc)}`;
    done = await store.shares.with(loc, async (root) => {
      const run = <T>(op: string, args: Record<string, unknown>, timeoutMs?: number) =>
        store.io.run<T>(op, { root, ...args }, describeShare(loc), timeoutMs);
      try {
        return await store.io.locked(root, id.key, describeShare(loc), () => busy(what), async (lock) => {
          const there = await run<Probed>("probe", { sub: loc.subDir }).catch((err: unknown) => {
            if (shareErrno(err) === "ENOENT") return undefined;
            throw err;
          });
          const mine = await readMarker(store.io, root, id.key, loc);
          if (!there) {
            if (mine?.volumeId === volumeId && id.onDelete !== "retain") await run("removeRecord", { key: id.key });
            // Kept by retain, it says the volume was let go, as below; unreleased, it would say the volume still exists.
            if (mine?.volumeId === volumeId && id.onDelete === "retain" && !mine.released) {
              await run("writeRecord", { key: id.key, data: JSON.stringify(released(mine)) + "\n" });
            }
            // A retry: the delete it retries may have been killed after its commit point, with the directory in the trash.
            if (id.onDelete === "delete") await run("clean", { trash: true }, Math.max(store.io.timeoutMs, 300_000)).catch(() => undefined);
            lock.gone();
            return "already gone";
          }
          const proven = mine !== undefined && mine.subDir === loc.subDir && (mine.version < 2 ? id.form === "record" : mine.volumeId === volumeId && sameDirectory(mine, there));
          if (!proven) {
            throw notFound(
              `volume ${volumeId}: ${what} was not made by this driver for this volume ID (no marker of it in ${META_DIR}/volumes); nothing was deleted`,
            );
          }
          if (id.onDelete === "retain") {
            // The marker stays, saying the volume was let go: a claim made again adopts the directory.
            await run("writeRecord", { key: id.key, data: JSON.stringify(released(mine)) + "\n" });
            lock.gone(); // the volume is gone, though its directory stays
            return "retained";
          }
          // The agent proves it again on what it moved: the directory may be swapped between here and there.
          const expect = mine.version < 2 ? undefined : mine.version >= 3 ? { identity: mine.dir } : { v2: mine.dir };
          const moved = id.onDelete === "delete" ? await run<string>("trash", { subDir: loc.subDir, key: id.key, expect }) : await run<string>("archive", { subDir: loc.subDir, stamp: stamp(), expect });
          if (moved === "changed") {
            throw notFound(`volume ${volumeId}: ${what} was replaced by another directory while it was being deleted; that one is not the volume's, and nothing was deleted`);
          }
          const result = moved === "absent" ? "already gone" : id.onDelete === "delete" ? "deleted" : `archived as ${moved}`;
          await run("removeRecord", { key: id.key });
          await run("clean", { tempsOf: id.key }); // what an interrupted create of this volume left
          // Emptying the trash may take long; what is left is emptied by the next delete on this share.
          if (id.onDelete === "delete") await run("clean", { trash: true }, Math.max(store.io.timeoutMs, 300_000)).catch(() => undefined);
          lock.gone();
          return result;
        });
      } catch (err) {
        throw volumeDirError(err, what);
      }
    });
  }
  await store.records.remove(volumeId, id.key);
  return done;
}

/** A marker saying its volume was deleted with onDelete: retain. (One from before version 3 keeps its version: its `dir` is of the older form.) */
function released(mine: Marker): Marker {
  return { ...mine, version: mine.version >= 3 ? MARKER_VERSION : mine.version, released: true };
}

/** A sortable UTC time for archive names: 20250101T120000Z. */
function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}
