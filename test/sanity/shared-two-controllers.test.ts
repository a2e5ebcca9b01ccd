// Two controllers of the driver acting on one share at once: a rolling update, or a partition, runs two
// csi-provisioners (or snapshotters) for a while, each with its own --root — the root lock (storage/root-lock.ts)
// serialises only drivers of one root. Their share-side steps interleave, and whatever the order, the share
// keeps the contract: for a name, at most one directory and one marker, the marker naming that very directory and
// the ID that was answered; both calls answer that ID, or one answers ABORTED or ALREADY_EXISTS. Never two IDs for
// one directory, a marker without its directory, nor a directory whose marker names another's. Likewise for a
// snapshot's record and content. And a snapshot, clone or restore whose source the other deletes meanwhile is a whole
// copy, or not answered OK. Each case runs many rounds, the two calls sent at the same moment (or one mid-copy).
import assert from "node:assert/strict";
import { promises as fsp, readFileSync } from "node:fs";
import * as path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { codeName } from "../../src/csi/errors";
import { snapshotKeyOf } from "../../src/backends/nfs/snapshot-id";
import { locationKey } from "../../src/backends/nfs/volume-id";

const ROUNDS = 50;
const RWX = Mode.MULTI_NODE_MULTI_WRITER;
/** What the spec lets the loser of a race answer. */
const LOSER_CODES = [Code.ABORTED, Code.ALREADY_EXISTS];

type Outcome<T> = { ok: true; value: T } | { ok: false; code: number; message: string };

async function outcome<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    const e = err as ServiceError;
    if (typeof e.code !== "number") throw err;
    return { ok: false, code: e.code, message: e.details ?? e.message };
  }
}

/** Fails the test on an answer the spec does not allow here. */
function allowed(o: Outcome<unknown>, who: string, codes: readonly number[] = LOSER_CODES): void {
  if (!o.ok) assert.ok(codes.includes(o.code), `${who} answered ${codeName(o.code)}: ${o.message}`);
}

describe("Two controllers on one share at once", function () {
  this.timeout(300_000);
  let a: DriverProcess;
  let b: DriverProcess;
  let share: string;
  before(async () => {
    a = await startDriver({ nodeId: "controller-a" });
    share = NFS_LOCAL.parameters(a).share!;
    // As on another node: neither sees the other's mounts (a's view of a volume it copies would otherwise stop b's DeleteVolume of it).
    b = await startDriver({ nodeId: "controller-b", extraArgs: ["--allow-share", share], ownMounts: true });
  });
  after(async () => {
    await destroyDriver(b);
    await destroyDriver(a);
  });

  const meta = (...parts: string[]) => path.join(share, ".csi-lab", ...parts);
  const createOn = (d: DriverProcess, name: string, extra: Record<string, string> = {}) =>
    d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability(RWX)], parameters: NFS_LOCAL.parameters(a, extra) }).then((r) => r.volume!.volumeId!);
  const readJson = (file: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  };
  const inode = async (p: string) => (await fsp.lstat(p, { bigint: true }).catch(() => undefined))?.ino;
  /** Temps of `key` in .csi-lab/tmp, or half-written records of it in .csi-lab/volumes. */
  const leftovers = async (sub: "tmp" | "volumes", key: string) =>
    ((await fsp.readdir(meta(sub)).catch(() => [])) as string[]).filter((e) => e.startsWith(`${key}.`) && (sub === "tmp" || e.endsWith(".tmp")));

  /**
   * The share's state for volume `name` (subDir = name): one directory whose marker names it and `volumeId`,
   * or (volumeId undefined) neither directory nor marker; nothing of it left in tmp.
   */
  async function volumeIs(name: string, volumeId: string | undefined, round: string): Promise<void> {
    const key = locationKey({ server: "", share, subDir: name });
    const ino = await inode(path.join(share, name));
    const marker = readJson(meta("volumes", `${key}.json`));
    const state = `${round}: directory ${ino === undefined ? "absent" : `inode ${ino}`}, marker ${JSON.stringify(marker)}`;
    if (volumeId === undefined) {
      assert.equal(ino, undefined, `no volume, yet a directory: ${state}`);
      assert.ok(marker === undefined || marker.released === true, `no volume, yet a marker: ${state}`);
    } else {
      assert.notEqual(ino, undefined, `volume ${volumeId} answered, but no directory: ${state}`);
      assert.equal(marker?.volumeId, volumeId, `the marker does not name the volume answered: ${state}`);
      assert.ok(String(marker?.dir).startsWith(`${ino}:`), `the marker names another directory: ${state}`);
      assert.notEqual(marker?.released, true, state);
    }
    assert.deepEqual(await leftovers("tmp", key), [], `${state}: a temp left`);
    assert.deepEqual(await leftovers("volumes", key), [], `${state}: a marker's temp left`);
  }

  /** Delete the volume through `d` and check the share holds nothing of it (the marker proved the directory). */
  async function deleteAndCheck(d: DriverProcess, name: string, volumeId: string, round: string): Promise<void> {
    await d.client.controller.deleteVolume({ volumeId });
    await volumeIs(name, undefined, `${round}, after its DeleteVolume`);
  }

  it("CreateVolume of one name on both: one directory and its marker, and both answer its ID (or one ABORTED)", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName("race");
      const round = `round ${i}`;
      const [x, y] = await Promise.all([outcome(createOn(a, name)), outcome(createOn(b, name))]);
      allowed(x, `${round}: a`);
      allowed(y, `${round}: b`);
      const ids = [x, y].flatMap((o) => (o.ok ? [o.value] : []));
      const id = ids[0] ?? (await createOn(a, name)); // both lost: a retry makes it
      for (const other of ids) assert.equal(other, id, `${round}: two IDs for one name`);
      await volumeIs(name, id, round);
      await deleteAndCheck(i % 2 ? a : b, name, id, round);
    }
  });

  it("CreateVolume of one name with different parameters on each: one volume, the other ALREADY_EXISTS or ABORTED", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName("race");
      const round = `round ${i}`;
      const [x, y] = await Promise.all([outcome(createOn(a, name, { onDelete: "delete" })), outcome(createOn(b, name, { onDelete: "archive" }))]);
      allowed(x, `${round}: a`);
      allowed(y, `${round}: b`);
      assert.ok(!(x.ok && y.ok), `${round}: one directory was answered as two volumes, ${x.ok && x.value} and ${y.ok && y.value}`);
      const won = x.ok ? x.value : y.ok ? y.value : await createOn(a, name, { onDelete: "delete" });
      await volumeIs(name, won, round);
      await deleteAndCheck(x.ok || !y.ok ? a : b, name, won, round);
      await fsp.rm(path.join(share, (await fsp.readdir(share)).find((e) => e.startsWith(`archived-${name}-`)) ?? "none"), { recursive: true, force: true });
    }
  });

  it("CreateVolume on one while DeleteVolume of that name's volume runs on the other: the share ends as one of them left it", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName("race");
      const round = `round ${i}`;
      const id = await createOn(a, name);
      const [del, made] = await Promise.all([outcome(a.client.controller.deleteVolume({ volumeId: id })), outcome(createOn(b, name))]);
      allowed(del, `${round}: DeleteVolume`, [Code.ABORTED]);
      allowed(made, `${round}: CreateVolume`);
      if (made.ok) assert.equal(made.value, id, round);
      const there = (await inode(path.join(share, name))) !== undefined;
      // Created after the delete: the volume is there; before it (the old one found), or not at all: gone.
      await volumeIs(name, there || !del.ok ? id : undefined, round);
      if (there || !del.ok) await deleteAndCheck(b, name, id, round);
    }
  });

  /** A volume made on a, holding `file` saying `text`. */
  async function sourceVolume(text: string): Promise<string> {
    const name = uniqueName("src");
    const id = await createOn(a, name);
    await fsp.writeFile(path.join(share, name, "file"), text);
    return id;
  }
  const snapshotOn = (d: DriverProcess, name: string, sourceVolumeId: string) =>
    d.client.controller.createSnapshot({ name, sourceVolumeId }).then((r) => r.snapshot!.snapshotId!);

  /** The share's state for snapshot `name`: its record, of `source`, and its content holding `text`; or (source undefined) neither. */
  async function snapshotIs(name: string, source: { volumeId: string; text: string } | undefined, round: string): Promise<void> {
    const key = snapshotKeyOf(name);
    const record = readJson(meta("snapshots", `${key}.json`));
    const content = await fsp.readFile(meta("snapshots", key, "file"), "utf8").catch(() => undefined);
    const state = `${round}: record ${JSON.stringify(record)}, content ${JSON.stringify(content)}`;
    if (source === undefined) {
      assert.equal(record, undefined, `no snapshot, yet a record: ${state}`);
      assert.equal(await inode(meta("snapshots", key)), undefined, `no snapshot, yet its content: ${state}`);
    } else {
      assert.equal(record?.sourceVolumeId, source.volumeId, `the record is not of the volume answered: ${state}`);
      assert.equal(content, source.text, `the content is not the answered source's: ${state}`);
    }
    assert.deepEqual(await leftovers("tmp", key), [], `${state}: a temp left`);
  }

  it("CreateSnapshot of one name on both: one record and its content, both answer its ID (or one ABORTED)", async () => {
    const volumeId = await sourceVolume("one");
    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName("snap");
      const round = `round ${i}`;
      const [x, y] = await Promise.all([outcome(snapshotOn(a, name, volumeId)), outcome(snapshotOn(b, name, volumeId))]);
      allowed(x, `${round}: a`);
      allowed(y, `${round}: b`);
      const ids = [x, y].flatMap((o) => (o.ok ? [o.value] : []));
      const id = ids[0] ?? (await snapshotOn(a, name, volumeId));
      for (const other of ids) assert.equal(other, id, round);
      await snapshotIs(name, { volumeId, text: "one" }, round);
      await b.client.controller.deleteSnapshot({ snapshotId: id });
      await snapshotIs(name, undefined, `${round}, after its DeleteSnapshot`);
    }
  });

  it("CreateSnapshot of one name of two volumes, one on each: one snapshot, of the volume answered; the other ALREADY_EXISTS or ABORTED", async () => {
    const sources = [{ volumeId: await sourceVolume("one"), text: "one" }, { volumeId: await sourceVolume("two"), text: "two" }];
    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName("snap");
      const round = `round ${i}`;
      const [x, y] = await Promise.all([outcome(snapshotOn(a, name, sources[0]!.volumeId)), outcome(snapshotOn(b, name, sources[1]!.volumeId))]);
      allowed(x, `${round}: a`);
      allowed(y, `${round}: b`);
      assert.ok(!(x.ok && y.ok), `${round}: one snapshot name answered for two volumes`);
      const won = x.ok ? 0 : y.ok ? 1 : undefined;
      const id = won === undefined ? await snapshotOn(a, name, sources[0]!.volumeId) : ((won === 0 ? x : y) as { value: string }).value;
      await snapshotIs(name, sources[won ?? 0], round);
      await a.client.controller.deleteSnapshot({ snapshotId: id });
      await snapshotIs(name, undefined, `${round}, after its DeleteSnapshot`);
    }
  });

  it("CreateSnapshot on one while DeleteSnapshot of that name runs on the other: a whole snapshot or none", async () => {
    const volumeId = await sourceVolume("one");
    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName("snap");
      const round = `round ${i}`;
      const id = await snapshotOn(a, name, volumeId);
      const [del, made] = await Promise.all([outcome(a.client.controller.deleteSnapshot({ snapshotId: id })), outcome(snapshotOn(b, name, volumeId))]);
      allowed(del, `${round}: DeleteSnapshot`, [Code.ABORTED]);
      allowed(made, `${round}: CreateSnapshot`);
      const there = readJson(meta("snapshots", `${snapshotKeyOf(name)}.json`)) !== undefined;
      await snapshotIs(name, there ? { volumeId, text: "one" } : undefined, round);
      if (there) await b.client.controller.deleteSnapshot({ snapshotId: id });
      await snapshotIs(name, undefined, `${round}, after its DeleteSnapshot`);
    }
  });

  // A call that copies a volume or snapshot, while the other controller deletes that source: the copy is whole, or
  // the call is not answered OK — never a snapshot or volume of what the delete left of it mid-copy.
  const FILES = 200;
  /** A volume made on a, holding FILES files (file-<i> saying <i>): enough that a copy of it takes a while. */
  async function fullVolume(): Promise<{ name: string; volumeId: string }> {
    const name = uniqueName("src");
    const volumeId = await createOn(a, name);
    await Promise.all(Array.from({ length: FILES }, (_, i) => fsp.writeFile(path.join(share, name, `file-${i}`), String(i))));
    return { name, volumeId };
  }
  /** Fails unless `dir` holds every file of a fullVolume, each saying what it should. */
  async function whole(dir: string, round: string): Promise<void> {
    const entries = await fsp.readdir(dir).catch(() => [] as string[]);
    const wrong = [];
    for (let i = 0; i < FILES; i++) {
      if ((await fsp.readFile(path.join(dir, `file-${i}`), "utf8").catch(() => undefined)) !== String(i)) wrong.push(`file-${i}`);
    }
    assert.deepEqual(wrong, [], `${round}: answered OK, yet a partial copy (${entries.length} of ${FILES} entries in ${dir})`);
  }
  /**
   * Run `copy` and `del` at once (even rounds), or `del` once the copy is under way (odd rounds): once a temp of `key`
   * in the share's tmp has a file in it, or the copy has ended. Outcomes of both.
   */
  async function race<T, U>(i: number, key: string, copy: () => Promise<T>, del: () => Promise<U>): Promise<[Outcome<T>, Outcome<U>]> {
    if (i % 2 === 0) return Promise.all([outcome(copy()), outcome(del())]);
    let ended = false;
    const made = outcome(copy()).finally(() => (ended = true));
    const begun = async () => {
      for (const t of ((await fsp.readdir(meta("tmp")).catch(() => [])) as string[]).filter((e) => e.startsWith(`${key}.`))) {
        if ((await fsp.readdir(meta("tmp", t)).catch(() => [])).length > 0) return true;
      }
      return false;
    };
    while (!ended && !(await begun())) await new Promise((resolve) => setTimeout(resolve, 1));
    const gone = await outcome(del());
    return [await made, gone];
  }
  const volumeKeyOf = (name: string) => locationKey({ server: "", share, subDir: name });
  /**
   * What a copy whose source the other controller deletes may answer: busy, or its source gone — never
   * FAILED_PRECONDITION, which says its data was removed behind the driver (shared-data-gone.test.ts).
   */
  const COPY_CODES = [Code.ABORTED, Code.NOT_FOUND];
  const copyOn = (d: DriverProcess, name: string, source: { volume: { volumeId: string } } | { snapshot: { snapshotId: string } }) =>
    d.client.controller
      .createVolume({ name, volumeCapabilities: [mountCapability(RWX)], parameters: NFS_LOCAL.parameters(a), volumeContentSource: source })
      .then((r) => r.volume!.volumeId!);

  it("CreateSnapshot on one while DeleteVolume of its source runs on the other: the snapshot is whole, or not answered OK", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const round = `round ${i}`;
      const src = await fullVolume();
      const name = uniqueName("snap");
      const [made, del] = await race(i, snapshotKeyOf(name), () => snapshotOn(a, name, src.volumeId), () => b.client.controller.deleteVolume({ volumeId: src.volumeId }));
      allowed(made, `${round}: CreateSnapshot`, COPY_CODES);
      allowed(del, `${round}: DeleteVolume`, [Code.ABORTED]);
      if (made.ok) {
        await whole(meta("snapshots", snapshotKeyOf(name)), round);
        await a.client.controller.deleteSnapshot({ snapshotId: made.value });
      }
      await snapshotIs(name, undefined, `${round}, after all`);
      if (!del.ok) await deleteAndCheck(a, src.name, src.volumeId, round);
      await volumeIs(src.name, undefined, `${round}, after its DeleteVolume`);
    }
  });

  it("CreateVolume from a volume on one while DeleteVolume of that source runs on the other: the clone is whole, or not answered OK", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const round = `round ${i}`;
      const src = await fullVolume();
      const name = uniqueName("clone");
      const [made, del] = await race(i, volumeKeyOf(name), () => copyOn(a, name, { volume: { volumeId: src.volumeId } }), () => b.client.controller.deleteVolume({ volumeId: src.volumeId }));
      allowed(made, `${round}: CreateVolume`, COPY_CODES);
      allowed(del, `${round}: DeleteVolume`, [Code.ABORTED]);
      if (made.ok) {
        await whole(path.join(share, name), round);
        await deleteAndCheck(b, name, made.value, round);
      }
      await volumeIs(name, undefined, `${round}, after all`);
      if (!del.ok) await deleteAndCheck(a, src.name, src.volumeId, round);
    }
  });

  it("CreateVolume from a snapshot on one while DeleteSnapshot of it runs on the other: the restore is whole, or not answered OK", async () => {
    const src = await fullVolume();
    for (let i = 0; i < ROUNDS; i++) {
      const round = `round ${i}`;
      const snapshotId = await snapshotOn(a, uniqueName("snap"), src.volumeId);
      const name = uniqueName("restore");
      const [made, del] = await race(i, volumeKeyOf(name), () => copyOn(a, name, { snapshot: { snapshotId } }), () => b.client.controller.deleteSnapshot({ snapshotId }));
      allowed(made, `${round}: CreateVolume`, COPY_CODES);
      allowed(del, `${round}: DeleteSnapshot`, [Code.ABORTED]);
      if (made.ok) {
        await whole(path.join(share, name), round);
        await deleteAndCheck(b, name, made.value, round);
      }
      await volumeIs(name, undefined, `${round}, after all`);
      if (!del.ok) await a.client.controller.deleteSnapshot({ snapshotId });
    }
  });

  // The other controller's delete done first, this one still holding its record of the source: the source does not
  // exist (NOT_FOUND), which is not data removed behind the driver (FAILED_PRECONDITION, shared-data-gone.test.ts).
  const lockFile = (key: string) => inode(meta("locks", key));
  for (const onDelete of ["delete", "retain"]) {
    it(`CreateSnapshot and CreateVolume from a volume (onDelete: ${onDelete}) the other controller deleted: NOT_FOUND, and nothing made`, async () => {
      for (const copy of ["snapshot", "clone"] as const) {
        const round = `${copy} of a volume deleted with onDelete: ${onDelete}`;
        const src = uniqueName("src");
        const volumeId = await createOn(a, src, { onDelete });
        await b.client.controller.deleteVolume({ volumeId });
        const name = uniqueName(copy);
        const made = await outcome(copy === "snapshot" ? snapshotOn(a, name, volumeId) : copyOn(a, name, { volume: { volumeId } }));
        assert.ok(!made.ok && made.code === Code.NOT_FOUND, `${round}: ${made.ok ? `answered ${made.value}` : `${codeName(made.code)}: ${made.message}`}`);
        assert.match(made.message, new RegExp(`source volume ${volumeId} does not exist`), round);
        const key = copy === "snapshot" ? snapshotKeyOf(name) : volumeKeyOf(name);
        if (copy === "snapshot") await snapshotIs(name, undefined, round);
        else await volumeIs(name, undefined, round);
        assert.equal(await lockFile(key), undefined, `${round}: the new ${copy}'s lock file was left`);
        assert.equal(await lockFile(volumeKeyOf(src)), undefined, `${round}: the deleted source's lock file was made again`);
        await fsp.rm(path.join(share, src), { recursive: true, force: true });
        await fsp.rm(meta("volumes", `${volumeKeyOf(src)}.json`), { force: true });
      }
    });
  }

  it("CreateVolume from a snapshot the other controller deleted: NOT_FOUND, and nothing made", async () => {
    const src = await sourceVolume("one");
    const snapshotId = await snapshotOn(a, uniqueName("snap"), src);
    await b.client.controller.deleteSnapshot({ snapshotId });
    const name = uniqueName("restore");
    const made = await outcome(copyOn(a, name, { snapshot: { snapshotId } }));
    assert.ok(!made.ok && made.code === Code.NOT_FOUND, made.ok ? `answered ${made.value}` : `${codeName(made.code)}: ${made.message}`);
    await volumeIs(name, undefined, "restore");
    assert.equal(await lockFile(volumeKeyOf(name)), undefined, "the new volume's lock file was left");
    await a.client.controller.deleteVolume({ volumeId: src });
  });

  it("CreateSnapshot of one volume on both at once, under two names: both whole (a copy holds its source shared)", async () => {
    const src = await fullVolume();
    for (let i = 0; i < ROUNDS; i++) {
      const round = `round ${i}`;
      const names = [uniqueName("snap"), uniqueName("snap")];
      const [x, y] = await Promise.all([outcome(snapshotOn(a, names[0]!, src.volumeId)), outcome(snapshotOn(b, names[1]!, src.volumeId))]);
      for (const [o, d, n] of [[x, a, names[0]!], [y, b, names[1]!]] as const) {
        assert.ok(o.ok, `${round}: ${o.ok || `${codeName(o.code)}: ${o.message}`}`);
        await whole(meta("snapshots", snapshotKeyOf(n)), round);
        await d.client.controller.deleteSnapshot({ snapshotId: o.value });
      }
    }
  });

  it("CreateSnapshot of one volume several times at once on one controller: no call is refused by its own share lock", async () => {
    const src = await fullVolume();
    for (let i = 0; i < ROUNDS / 10; i++) {
      const round = `round ${i}`;
      const names = Array.from({ length: 4 }, () => uniqueName("snap"));
      const first = await Promise.all(names.map((n) => outcome(snapshotOn(a, n, src.volumeId))));
      for (const [k, o] of first.entries()) {
        // The driver serialises calls on one volume itself (ABORTED, "another operation"); the share lock adds nothing to that.
        allowed(o, `${round}: CreateSnapshot ${k}`, [Code.ABORTED]);
        if (!o.ok) assert.doesNotMatch(o.message, /another controller/, `${round}: CreateSnapshot ${k} was refused by this driver's own share lock`);
      }
      for (const n of names) {
        const snapshotId = await snapshotOn(a, n, src.volumeId); // the CO's retry
        await whole(meta("snapshots", snapshotKeyOf(n)), round);
        await a.client.controller.deleteSnapshot({ snapshotId });
      }
    }
  });
});
