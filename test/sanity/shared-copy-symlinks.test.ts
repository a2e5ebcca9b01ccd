// Copies on a share (snapshot, restore, clone) read and write only the share, whatever symlink is planted in its tree, and when.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, shellQuote as q, uniqueName, type DriverProcess } from "./harness";
import { SECCOMP_VARIANTS, startFor } from "./seccomp-variants";
import { swapEnv } from "./swap-hook";
import { readMountInfo } from "../../src/mount/mountinfo";
import { snapshotKeyOf } from "../../src/backends/nfs/snapshot-id";
import { locationKey } from "../../src/backends/nfs/volume-id";

const OWN = "the volume's own bytes";
const SECRET = "the node's own file, outside the share";

/** What a case is given: where things are on the share and outside it. */
interface Places {
  share: string;
  meta: string;
  /** The snapshot the call makes or reads. */
  key: string;
  /** The source volume's directory. */
  volumeDir: string;
  /** A directory outside the share, holding only marker files. */
  outside: string;
  /** Where a script notes the directories it made outside (empty ones, which must stay empty). */
  planted: string;
}

interface Case {
  title: string;
  call: "CreateSnapshot" | "restore" | "clone";
  /** When the share changes: before the call, or in it — right before cp runs, or right before a copy's view is mounted. */
  when: "before" | "cp" | "view";
  /** A shell script: what another node or the share's server does to the share then. */
  plant: (p: Places) => string;
  /** OK (the copy had reached the source before the swap, and reads only it) or FAILED_PRECONDITION matching this. */
  refused?: RegExp;
}

/** Swap `place` for a symlink to `target`, the real one moved aside (within the share). */
const swap = (place: string, target: string) => `mv ${q(place)} ${q(place + ".moved")}\nln -s ${q(target)} ${q(place)}`;
/** In `dir` outside the share, an empty directory of each name in `from` — as someone reading the share would mirror it. */
const mirror = (p: Places, from: string, dir: string) =>
  `mkdir -p ${q(dir)}\necho ${q(dir)} >> ${q(p.planted)}\nfor e in ${q(from)}/*; do [ -e "$e" ] || continue; mkdir ${q(dir)}/"\${e##*/}"; echo ${q(dir)}/"\${e##*/}" >> ${q(p.planted)}; done`;
/** The temporary directory of the call's copy, in the share's tmp, swapped for a link to `target`. */
const swapTemp = (p: Places, target: string) =>
  `mkdir -p ${q(target)}\necho ${q(target)} >> ${q(p.planted)}\nfor e in ${q(p.meta)}/tmp/*; do mv "$e" "$e.moved"; ln -s ${q(target)} "$e"; done`;

const SYMLINK = /symbolic link|symlink/;

const CASES: Case[] = [
  // CreateSnapshot: the volume's directory is read, the copy written in tmp, then moved to snapshots/<key>.
  { title: "the volume's directory is a symlink", call: "CreateSnapshot", when: "before", plant: (p) => swap(p.volumeDir, `${p.outside}/content`), refused: SYMLINK },
  { title: "the share's tmp is a symlink", call: "CreateSnapshot", when: "before", plant: (p) => `mkdir -p ${q(p.meta)}/tmp\n${swap(`${p.meta}/tmp`, `${p.outside}/content`)}`, refused: SYMLINK },
  {
    title: "the volume's directory is swapped for a symlink after it was checked",
    call: "CreateSnapshot",
    when: "view",
    plant: (p) => swap(p.volumeDir, `${p.outside}/content`),
    refused: SYMLINK,
  },
  { title: "the volume's directory is swapped for a symlink as cp starts", call: "CreateSnapshot", when: "cp", plant: (p) => swap(p.volumeDir, `${p.outside}/content`) },
  {
    title: "the share's tmp is swapped for a symlink to a mirror of it as cp starts",
    call: "CreateSnapshot",
    when: "cp",
    plant: (p) => `${mirror(p, `${p.meta}/tmp`, `${p.outside}/tmp`)}\n${swap(`${p.meta}/tmp`, `${p.outside}/tmp`)}`,
    refused: SYMLINK,
  },
  { title: "the copy's own directory in tmp is swapped for a symlink as cp starts", call: "CreateSnapshot", when: "cp", plant: (p) => swapTemp(p, `${p.outside}/into`), refused: SYMLINK },
  // A restore: the snapshot's content is read, and written into the new volume's directory in tmp.
  { title: "the snapshot's content is a symlink", call: "restore", when: "before", plant: (p) => swap(`${p.meta}/snapshots/${p.key}`, `${p.outside}/content`), refused: SYMLINK },
  { title: "the share's snapshots directory is a symlink", call: "restore", when: "before", plant: (p) => swap(`${p.meta}/snapshots`, `${p.outside}/snapshots`), refused: SYMLINK },
  { title: "the share's tmp is a symlink", call: "restore", when: "before", plant: (p) => `mkdir -p ${q(p.meta)}/tmp\n${swap(`${p.meta}/tmp`, `${p.outside}/content`)}`, refused: SYMLINK },
  {
    title: "the share's snapshots directory is swapped for a symlink after the record was read",
    call: "restore",
    when: "view",
    plant: (p) => swap(`${p.meta}/snapshots`, `${p.outside}/snapshots`),
    refused: SYMLINK,
  },
  { title: "the share's snapshots directory is swapped for a symlink as cp starts", call: "restore", when: "cp", plant: (p) => swap(`${p.meta}/snapshots`, `${p.outside}/snapshots`) },
  { title: "the snapshot's content is swapped for a symlink as cp starts", call: "restore", when: "cp", plant: (p) => swap(`${p.meta}/snapshots/${p.key}`, `${p.outside}/content`) },
  {
    title: "the share's tmp is swapped for a symlink to a mirror of it as cp starts",
    call: "restore",
    when: "cp",
    plant: (p) => `${mirror(p, `${p.meta}/tmp`, `${p.outside}/tmp`)}\n${swap(`${p.meta}/tmp`, `${p.outside}/tmp`)}`,
    refused: SYMLINK,
  },
  { title: "the new volume's directory in tmp is swapped for a symlink as cp starts", call: "restore", when: "cp", plant: (p) => swapTemp(p, `${p.outside}/into`), refused: /replaced while it was made/ },
  // A clone: the source volume's directory is read.
  {
    title: "the source volume's directory is swapped for a symlink after it was checked",
    call: "clone",
    when: "view",
    plant: (p) => swap(p.volumeDir, `${p.outside}/content`),
    refused: SYMLINK,
  },
  { title: "the source volume's directory is swapped for a symlink as cp starts", call: "clone", when: "cp", plant: (p) => swap(p.volumeDir, `${p.outside}/content`) },
];

/** A tree as a sorted list: "f: <content>" for files, "d/" for directories, "l -> <target>" for symlinks. */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) out.push(`${rel}/`, ...(await tree(dir, rel)));
    else if (e.isSymbolicLink()) out.push(`${rel} -> ${await fsp.readlink(path.join(dir, rel))}`);
    else out.push(`${rel}: ${await fsp.readFile(path.join(dir, rel), "utf8")}`);
  }
  return out.sort();
}

for (const variant of SECCOMP_VARIANTS) {
describe(`Copies on a share never leave it, whatever symlink is planted in its tree${variant.title}`, function () {
  let a: DriverProcess;
  let share: string;
  let swapFile: string;
  let scratch: string;
  before(async function () {
    if (variant.skip) this.skip();
    scratch = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-swap-"));
    swapFile = path.join(scratch, "swap");
    a = await startFor({ ...variant, env: variant.env && swapEnv(swapFile, variant.env) }, { env: swapEnv(swapFile) });
    share = NFS_LOCAL.parameters(a).share!;
  });
  after(async () => {
    await destroyDriver(a);
    if (scratch) await fsp.rm(scratch, { recursive: true, force: true });
  });

  const meta = () => path.join(share, ".csi-lab");
  const newVolume = (name: string, source?: { snapshot?: { snapshotId: string }; volume?: { volumeId: string } }) =>
    a.client.controller.createVolume({
      name,
      volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)],
      parameters: NFS_LOCAL.parameters(a),
      ...(source ? { volumeContentSource: source } : {}),
    });

  /** Put back what a plant moved aside: each symlink it made on the share goes, and the `.moved` original returns (outermost first). */
  async function unplant(): Promise<void> {
    for (const dir of [share, meta(), path.join(meta(), "snapshots"), path.join(meta(), "tmp")]) {
      for (const e of await fsp.readdir(dir).catch(() => [])) {
        if (!e.endsWith(".moved")) continue;
        const place = path.join(dir, e.slice(0, -".moved".length));
        await fsp.rm(place, { force: true });
        await fsp.rename(path.join(dir, e), place);
      }
    }
  }

  for (const c of CASES) {
    const when = c.when === "before" ? "before the call" : c.when === "cp" ? "in the call, as cp starts" : "in the call, before the copy's view is mounted";
    it(`${c.call}: ${c.title} (${when}) — ${c.refused ? "FAILED_PRECONDITION" : "OK, from the source as it was reached"}; nothing outside is read or written`, async () => {
      const source = (await newVolume(uniqueName("src"))).volume!;
      const volumeDir = NFS_LOCAL.contentDir(a, source.volumeId!);
      await fsp.writeFile(path.join(volumeDir, "f"), OWN);
      const snapName = uniqueName("snap");
      const snapshot = c.call === "restore" ? (await a.client.controller.createSnapshot({ name: snapName, sourceVolumeId: source.volumeId })).snapshot! : undefined;
      const key = snapshotKeyOf(snapName);

      // Outside the share: marker files where each plant points, and nothing else.
      const outside = path.join(a.dir, "outside", uniqueName("case"));
      const markers = [path.join(outside, "secret"), path.join(outside, "content", "secret"), path.join(outside, "snapshots", key, "secret")];
      for (const m of markers) {
        await fsp.mkdir(path.dirname(m), { recursive: true });
        await fsp.writeFile(m, SECRET);
      }
      const before = await tree(outside);
      const places: Places = { share, meta: meta(), key, volumeDir, outside, planted: path.join(scratch, "planted") };
      await fsp.rm(places.planted, { force: true });
      const script = c.plant(places);
      if (c.when === "before") execFileSync("/bin/sh", ["-ec", script]);
      else await fsp.writeFile(swapFile, `${c.when}\n${script}\n`);

      const name = uniqueName("made");
      const call = () =>
        c.call === "CreateSnapshot"
          ? a.client.controller.createSnapshot({ name: snapName, sourceVolumeId: source.volumeId })
          : newVolume(name, c.call === "restore" ? { snapshot: { snapshotId: snapshot!.snapshotId! } } : { volume: { volumeId: source.volumeId! } });
      let made = false;
      try {
        if (c.refused) await expectCode(call(), Code.FAILED_PRECONDITION, c.refused);
        else made = (await call()) !== undefined;
        assert.equal(existsSync(swapFile), false, "the share was changed in the call");

        // Nothing outside was written (no file but the markers, each plant's directory still empty) — or moved away.
        const planted = existsSync(places.planted) ? (await fsp.readFile(places.planted, "utf8")).split("\n").filter((l) => l !== "") : [];
        const expected = [...before, ...planted.map((d) => path.relative(outside, d) + "/")].sort();
        assert.deepEqual(await tree(outside), [...new Set(expected)].sort(), "outside the share: as it was");
        // No view is left mounted.
        const views = path.join(a.root, "snapshots", ".views");
        assert.deepEqual(await fsp.readdir(views), []);
        assert.ok(!readMountInfo().some((m) => m.mountPoint.startsWith(views + "/")));
      } finally {
        await fsp.rm(swapFile, { force: true });
        await unplant();
      }
      const madeDir = path.join(share, name);
      if (made) {
        // It read the source as the driver had reached it: the volume's own bytes, never the node's.
        const dir = c.call === "CreateSnapshot" ? path.join(meta(), "snapshots", key) : madeDir;
        assert.deepEqual(await tree(dir), [`f: ${OWN}`]);
      } else {
        // Nothing half-made: no snapshot, or no volume, marker or record; and a retry does it, and leaves no temp behind.
        if (c.call === "CreateSnapshot") {
          assert.equal(existsSync(path.join(meta(), "snapshots", key)), false, "no snapshot content");
          assert.equal(existsSync(path.join(meta(), "snapshots", `${key}.json`)), false, "no snapshot record");
        } else {
          const markerKey = locationKey({ server: "", share, subDir: name });
          assert.equal(existsSync(madeDir), false, "no volume directory");
          assert.equal(existsSync(path.join(meta(), "volumes", `${markerKey}.json`)), false, "no marker");
          assert.equal(existsSync(path.join(a.root, "shared", `${markerKey}.json`)), false, "no record");
        }
        await call();
        const dir = c.call === "CreateSnapshot" ? path.join(meta(), "snapshots", key) : madeDir;
        assert.deepEqual(await tree(dir), [`f: ${OWN}`]);
      }
      assert.deepEqual(await fsp.readdir(path.join(meta(), "tmp")).catch(() => []), [], "no temp left in the share's tmp");
    });
  }
});
}
