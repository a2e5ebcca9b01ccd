/**
 * Ephemeral inline volumes, kept as hostPath volumes.
 *
 * The kubelet calls NodePublishVolume for a pod's `csi:` volume with a
 * volume_id of its own making and no staging path; the volume is made on
 * the first call and removed with its last target (src/node/ephemeral.ts
 * has the CSI side: attributes, locks). Here it is a hostPath volume named
 * "ephemeral/<volume_id>" (ephemeral-names.ts), made with the store's
 * two-phase commit, so a retried publish finds the volume a crash left
 * behind and a retried unpublish deletes what an interrupted one did not.
 * It is a directory (whatever the default capacity mode), bound straight
 * to the target, and deleted only once no mount of it is left; a
 * capability it cannot deliver (block access, another file system's
 * fs_type) is refused before anything is made.
 */
import { unsupportedReason } from "../../csi/capabilities";
import { alreadyExists, Code, CsiError, failedPrecondition, outOfRange } from "../../csi/errors";
import { directoryAt } from "../../storage/dir-identity";
import { nodeTopology } from "../../controller/volume-view";
import { sameMutableParameters } from "../../controller/mutable-parameters";
import { applyMutableParameters } from "./mutable";
import { checkEphemeralAttributes } from "../../node/ephemeral";
import { mountsOfDir } from "../../mount/volume-mounts";
import type { EphemeralBackend } from "../backend";
import { ephemeralName, isEphemeralRecord } from "./ephemeral-names";
import { bindFlags, publishAt } from "./node";
import { findVolume } from "./node-volume";
import { defaultSize, type Placement } from "./placement";
import { HostPathStore, hostPathStore } from "./store";

/** How an inline volume is kept: a directory, its size a label (capacity: none). */
const INLINE: Placement = { layout: "dir", withQuota: false };

export const hostPathEphemeral: EphemeralBackend = {
  storeId(volumeId) {
    return HostPathStore.isVolumeId(volumeId) ? volumeId : HostPathStore.idForName(ephemeralName(volumeId));
  },

  async publish(driver, req) {
    const store = hostPathStore(driver);
    const attrs = checkEphemeralAttributes(req.volumeContext);
    // An inline volume is a directory: no block device, no file system but the root's.
    // Refused before anything is made, as a staged volume's publish refuses what its layout cannot deliver.
    const why = unsupportedReason(req.cap, store.profileFor("dir"));
    if (why) throw failedPrecondition(`inline volume ${req.volumeId}: ${why}`);
    const total = (await store.usage()).totalBytes;
    // Asked for no size, it gets what a capacity: none volume asked for none gets: on a small root, the root's size.
    const sizeBytes = attrs.sizeBytes ?? defaultSize(driver, INLINE, total);
    if (sizeBytes > total) {
      throw outOfRange(`an inline volume of ${sizeBytes} bytes cannot fit on this node's file system (${total} bytes in all)`);
    }
    const { record, created } = await store.create({
      name: ephemeralName(req.volumeId),
      capacityBytes: sizeBytes,
      capabilities: [req.cap],
      parameters: {},
      mutableParameters: attrs.mutableParameters,
      topology: nodeTopology(driver).segments ?? {},
    });
    // A retry that names no size takes the one the volume was made with, which the root's size may have set
    // (the root may have grown since), as a CreateVolume with no capacity_range takes any size.
    const otherSize = attrs.sizeBytes !== undefined && record.capacityBytes !== attrs.sizeBytes;
    if (!created && (otherSize || !sameMutableParameters(record.mutableParameters, attrs.mutableParameters))) {
      throw alreadyExists(`inline volume ${req.volumeId} already exists with a different size or mode`);
    }
    applyMutableParameters(driver, record, record.mutableParameters);
    const vol = await findVolume(driver, record.volumeId);
    try {
      await publishAt(driver, { volumeId: req.volumeId, vol, source: { path: vol.dataDir }, target: req.target, cap: req.cap, flags: bindFlags(req.cap), readonly: req.readonly, forcedReadOnly: false });
    } catch (err) {
      // A volume made by this very call and never mounted holds nothing:
      // do not leave it for a pod that may never come back for it.
      if (created) await this.removeIfUnused(driver, req.volumeId);
      throw err;
    }
  },

  async removeIfUnused(driver, volumeId) {
    if (HostPathStore.isVolumeId(volumeId)) return false;
    const store = hostPathStore(driver);
    const id = this.storeId(volumeId);
    const record = await store.get(id);
    if (!record || !isEphemeralRecord(record)) return false;
    // Another directory at the volume's name is not the volume's to remove (volume-dir.ts): it stays, and so does the volume.
    const proof = record.dataIdentity;
    const keep = () => {
      driver.log.warn("an inline volume was not removed: another directory is at its name", { volumeId: id, path: store.dataDir(id) });
      return false;
    };
    if (proof && directoryAt(store.dataDir(id), proof) === "other") return keep();
    if (mountsOfDir(store.dataDir(id)).mounts.length > 0) return false;
    try {
      await store.delete(id, "dir", proof);
    } catch (err) {
      if (!(err instanceof CsiError && err.code === Code.NOT_FOUND)) throw err;
      return keep(); // swapped in as it was moved, and put back
    }
    return true;
  },
};
