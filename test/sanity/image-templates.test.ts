// File-system templates (src/backends/hostpath/templates.ts): an image
// volume's file system is a clone of a template formatted once per type
// and size. Every clone must be a correct, independent, sparse file system
// of its own; a template is made once however many creates want it at
// once, is never used half-made, and only a few are kept.
//
// A stand-in PATH directory puts a wrapper before the real mkfs.ext4 and
// mkfs.xfs that writes a line per run and then runs the real program: so
// the tests can count the formats the driver ran.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { MAX_TEMPLATES } from "../../src/backends/hostpath/templates";
import { canGrowExt4Online, FORMAT_RECIPE } from "../../src/mount/filesystem";
import { Code, destroyDriver, expectCode, mountCapability, shellQuote, startDriver, uniqueName, type DriverProcess } from "./harness";
import { driverOnLoopFs } from "./loop-fs";
import { IMAGE_FS_PROGRAMS, skipUnlessInstalled } from "./programs";

const MiB = 1024 * 1024;

const fsCap = (fsType: string) => ({ ...mountCapability(), mount: { fsType, mountFlags: [], volumeMountGroup: "" } });

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** e2fsck -fn (ext4) or xfs_repair -n (XFS) finds nothing to fix. */
function assertClean(image: string, fsType = "ext4"): void {
  const r = fsType === "ext4" ? run("e2fsck", ["-fn", image]) : run("xfs_repair", ["-n", "-f", image]);
  assert.equal(r.status, 0, `${image} is not a clean ${fsType}:\n${r.out}`);
}

function uuidOf(image: string): string {
  return run("blkid", ["-p", "-o", "value", "-s", "UUID", image]).out.trim();
}

async function sha256(file: string): Promise<string> {
  return createHash("sha256").update(await fsp.readFile(file)).digest("hex");
}

const templateName = (fsType: "ext4" | "xfs", bytes: number) => `${fsType}-${FORMAT_RECIPE[fsType]}-${bytes}.img`;

/**
 * A driver making image volumes, whose mkfs runs are counted (see the top
 * of this file): `formats(bytes)` says how often an image of that size was formatted.
 */
async function countingDriver(): Promise<{ d: DriverProcess; formats: (bytes: number) => Promise<number>; bin: string }> {
  const bin = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-mkfs-count-"));
  const log = path.join(bin, "runs.log");
  await fsp.writeFile(log, "");
  for (const tool of ["mkfs.ext4", "mkfs.xfs"]) {
    const real = run("sh", ["-c", `command -v ${tool}`]).out.trim();
    if (!real) continue;
    // The image is mkfs's last argument; its size says which template it is.
    await fsp.writeFile(path.join(bin, tool), `#!/bin/sh\nfor a; do last=$a; done\necho "$(stat -c %s "$last")" >> ${shellQuote(log)}\nexec ${shellQuote(real)} "$@"\n`, { mode: 0o755 });
  }
  const d = await startDriver({ extraArgs: ["--default-capacity-mode", "image"], env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  const formats = async (bytes: number) => (await fsp.readFile(log, "utf8")).split("\n").filter((l) => l === String(bytes)).length;
  return { d, formats, bin };
}

describe("Image volumes from file-system templates", () => {
  let d: DriverProcess;
  let formats: (bytes: number) => Promise<number>;
  let bin: string;
  before(async () => ({ d, formats, bin } = await countingDriver()));
  after(async () => {
    await destroyDriver(d);
    await fsp.rm(bin, { recursive: true, force: true });
  });

  const templates = () => fsp.readdir(path.join(d.root, ".templates"));
  const image = (id: string) => path.join(d.root, "data", id);
  const create = async (size: number, fsType = "ext4") =>
    (await d.client.controller.createVolume({ name: uniqueName("tpl"), volumeCapabilities: [fsCap(fsType)], capacityRange: { requiredBytes: size } })).volume!
      .volumeId!;

  /** Stage `id`, run `fn` on its file system, unstage. */
  async function withStaged<T>(id: string, fsType: string, fn: (dir: string) => Promise<T>): Promise<T> {
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath, volumeCapability: fsCap(fsType) });
    try {
      return await fn(stagingTargetPath);
    } finally {
      await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath });
    }
  }

  it("formats once per size: later volumes are clones, each a clean ext4 of its size, root 0777, with a UUID of its own", async () => {
    const size = 48 * MiB;
    const ids = [await create(size), await create(size), await create(size)];
    assert.equal(await formats(size), 1, "mkfs ran once for three volumes");
    assert.ok((await templates()).includes(templateName("ext4", size)));
    const template = path.join(d.root, ".templates", templateName("ext4", size));
    const uuids = new Set([uuidOf(template)]);
    for (const id of ids) {
      assert.equal((await fsp.stat(image(id))).size, size);
      assertClean(image(id));
      uuids.add(uuidOf(image(id)));
      await withStaged(id, "ext4", async (dir) => {
        assert.equal((await fsp.stat(dir)).mode & 0o777, 0o777);
        const s = await fsp.statfs(dir);
        assert.ok(s.blocks * s.bsize > 0.8 * size && s.blocks * s.bsize <= size, `the file system has ${s.blocks * s.bsize} bytes`);
      });
    }
    assert.equal(uuids.size, 4, "the template and its three clones have four different UUIDs");
    assertClean(template);
  });

  it("clones are independent: what one volume holds, neither the other nor the template does", async () => {
    const size = 16 * MiB;
    const [a, b] = [await create(size), await create(size)];
    const template = path.join(d.root, ".templates", templateName("ext4", size));
    const before = await sha256(template);
    await withStaged(a, "ext4", (dir) => fsp.writeFile(path.join(dir, "only-in-a"), "a".repeat(100_000)));
    await withStaged(b, "ext4", async (dir) => {
      assert.deepEqual((await fsp.readdir(dir)).sort(), ["lost+found"]);
      await fsp.writeFile(path.join(dir, "only-in-b"), "b");
    });
    await withStaged(a, "ext4", async (dir) => assert.deepEqual((await fsp.readdir(dir)).sort(), ["lost+found", "only-in-a"]));
    assert.equal(await sha256(template), before, "the template is unchanged");
    // A volume made after the others were written to is empty again.
    await withStaged(await create(size), "ext4", async (dir) => assert.deepEqual(await fsp.readdir(dir), ["lost+found"]));
    assertClean(image(a));
    assertClean(image(b));
  });

  it("clones are sparse: a 1 GiB volume and its template take well under 2 MiB of disk each", async () => {
    const size = 1024 * MiB;
    const id = await create(size);
    const template = path.join(d.root, ".templates", templateName("ext4", size));
    for (const f of [template, image(id)]) {
      const st = await fsp.stat(f);
      assert.equal(st.size, size);
      assert.ok(st.blocks * 512 < 2 * MiB, `${path.basename(f)} takes ${st.blocks * 512} bytes`);
    }
  });

  it("concurrent creates of one new size make one template between them, and all get whole file systems", async () => {
    const size = 24 * MiB;
    const ids = await Promise.all(Array.from({ length: 6 }, () => create(size)));
    assert.equal(await formats(size), 1);
    assert.equal((await templates()).filter((n) => n === templateName("ext4", size)).length, 1);
    assert.deepEqual(
      (await templates()).filter((n) => n.startsWith(".")),
      [],
      "no temporary file is left",
    );
    for (const id of ids) assertClean(image(id));
    assert.equal(new Set(ids.map((id) => uuidOf(image(id)))).size, 6);
  });

  it("a different size gets a template of its own", async () => {
    await create(20 * MiB);
    await create(21 * MiB);
    assert.equal(await formats(20 * MiB), 1);
    assert.equal(await formats(21 * MiB), 1);
    const names = await templates();
    assert.ok(names.includes(templateName("ext4", 20 * MiB)) && names.includes(templateName("ext4", 21 * MiB)));
  });

  it(`keeps at most ${MAX_TEMPLATES} templates, evicting the least recently used`, async () => {
    // Sizes no other test here uses, in order: the first two are evicted.
    const sizes = Array.from({ length: MAX_TEMPLATES + 2 }, (_, i) => (100 + i) * MiB);
    for (const s of sizes) await create(s);
    let names = await templates();
    assert.ok(names.length <= MAX_TEMPLATES, `${names.length} templates: ${names.join(", ")}`);
    assert.ok(!names.includes(templateName("ext4", sizes[0]!)) && !names.includes(templateName("ext4", sizes[1]!)));
    // Using one makes it recent: the next new size evicts the oldest other one instead.
    await create(sizes[2]!);
    assert.equal(await formats(sizes[2]!), 1, "a kept template is used, not remade");
    await create(sizes[0]!);
    assert.equal(await formats(sizes[0]!), 2, "an evicted one is made again");
    names = await templates();
    assert.ok(names.includes(templateName("ext4", sizes[2]!)));
    assert.ok(!names.includes(templateName("ext4", sizes[3]!)));
  });

  it("grows a cloned volume (ControllerExpandVolume + NodeExpandVolume, or at the next stage); it stays clean and keeps its UUID", async () => {
    const id = await create(32 * MiB);
    const uuid = uuidOf(image(id));
    const cap = fsCap("ext4");
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath, volumeCapability: cap });
    await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 96 * MiB } });
    const expand = d.client.node.nodeExpandVolume({ volumeId: id, volumePath: stagingTargetPath });
    if (canGrowExt4Online()) {
      await expand;
    } else {
      // Without CAP_SYS_RESOURCE (node-expand-volume.test.ts): offline, e2fsck + resize2fs at the next stage.
      await expectCode(expand, Code.FAILED_PRECONDITION, /CAP_SYS_RESOURCE/);
      await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath });
      await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath, volumeCapability: cap });
    }
    const s = await fsp.statfs(stagingTargetPath);
    assert.ok(s.blocks * s.bsize > 80 * MiB, `grew to ${s.blocks * s.bsize} bytes`);
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath });
    assertClean(image(id));
    assert.equal(uuidOf(image(id)), uuid);
    // The template it came from is still the small one.
    assert.equal((await fsp.stat(path.join(d.root, ".templates", templateName("ext4", 32 * MiB)))).size, 32 * MiB);
  });

  it("XFS: clones of one template, each a clean XFS with its root 0777, cheaper on disk than the template", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs, "xfs_repair");
    const size = 300 * MiB;
    const [a, b] = [await create(size, "xfs"), await create(size, "xfs")];
    assert.equal(await formats(size), 1);
    const template = path.join(d.root, ".templates", templateName("xfs", size));
    for (const id of [a, b]) {
      assertClean(image(id), "xfs");
      const st = await fsp.stat(image(id));
      assert.equal(st.size, size);
      // mkfs.xfs preallocates its log; the copy keeps only what was written.
      assert.ok(st.blocks * 512 <= (await fsp.stat(template)).blocks * 512, "no larger than the template");
    }
    await withStaged(a, "xfs", async (dir) => {
      assert.equal((await fsp.stat(dir)).mode & 0o777, 0o777);
      await fsp.writeFile(path.join(dir, "only-in-a"), "a");
    });
    await withStaged(b, "xfs", async (dir) => assert.deepEqual(await fsp.readdir(dir), []));
    assertClean(template, "xfs");
  });
});

describe("Image templates after a crash", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: ["--default-capacity-mode", "image"] })));
  after(async () => destroyDriver(d));

  const dir = () => path.join(d.root, ".templates");
  const create = async (size: number) =>
    (await d.client.controller.createVolume({ name: uniqueName("tpl"), volumeCapabilities: [fsCap("ext4")], capacityRange: { requiredBytes: size } })).volume!
      .volumeId!;

  it("the start-up sweep removes temporary templates and other recipes' templates, and leaves files not its own", async () => {
    await create(8 * MiB);
    await d.stop("SIGKILL");
    const leftovers = [`.tmp-${templateName("ext4", 9 * MiB)}-0badc0de`, `.tmp-${templateName("xfs", 300 * MiB)}-0badc0de.proto`, `ext4-r0-${8 * MiB}.img`];
    for (const f of leftovers) await fsp.writeFile(path.join(dir(), f), "half-made");
    await fsp.writeFile(path.join(dir(), "notes.txt"), "not the driver's");
    await d.start();
    assert.deepEqual((await fsp.readdir(dir())).sort(), [templateName("ext4", 8 * MiB), "notes.txt"].sort());
    // The template a previous run made is used again, not remade.
    const ino = (await fsp.stat(path.join(dir(), templateName("ext4", 8 * MiB)))).ino;
    const id = await create(8 * MiB);
    assert.equal((await fsp.stat(path.join(dir(), templateName("ext4", 8 * MiB)))).ino, ino);
    assertClean(path.join(d.root, "data", id));
  });

  for (const [what, spoil] of [
    ["cut short", (f: string) => fsp.truncate(f, MiB)],
    ["without an ext4 super-block", (f: string) => fsp.writeFile(f, Buffer.alloc(8 * 1024), { flag: "r+" })],
  ] as const) {
    it(`a template ${what} is made again, not cloned`, async () => {
      const size = 12 * MiB;
      await create(size);
      const template = path.join(dir(), templateName("ext4", size));
      await spoil(template);
      const id = await create(size); // the driver checks a template before each use
      assert.equal((await fsp.stat(template)).size, size);
      assertClean(template);
      assertClean(path.join(d.root, "data", id));
      // And after a restart, as found on disk.
      await spoil(template);
      await d.restart();
      assertClean(path.join(d.root, "data", await create(size)));
    });
  }

  it("a kill -9 while templates are being made leaves no temporary file and no broken template", async function () {
    this.timeout(60_000);
    const sizes = [40, 41, 42, 43].map((n) => n * MiB);
    const calls = Promise.allSettled(sizes.flatMap((s) => [create(s), create(s)]));
    await new Promise((r) => setTimeout(r, 30));
    await d.stop("SIGKILL");
    await calls;
    await d.start();
    const names = await fsp.readdir(dir());
    assert.deepEqual(names.filter((n) => n.startsWith(".")), []);
    for (const n of names.filter((n) => n.endsWith(".img"))) assertClean(path.join(dir(), n));
    for (const s of sizes) assertClean(path.join(d.root, "data", await create(s)));
  });
});

for (const [kind, needs] of [
  ["xfs", ["mkfs.xfs"]],
  ["btrfs", ["mkfs.btrfs"]],
] as const) {
  describe(`Image templates on a ${kind} root: clones are reflinks`, () => {
    let d: DriverProcess;
    driverOnLoopFs(kind, 1024 * MiB, (_fs, driver) => (d = driver), [...needs, "filefrag", "lsattr"]);

    it("the clone shares the template's blocks, and is a clean file system of its own", async () => {
      const size = 256 * MiB;
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const { volume } = await d.client.controller.createVolume({
          name: uniqueName("reflink"),
          volumeCapabilities: [fsCap("ext4")],
          capacityRange: { requiredBytes: size },
          parameters: { capacity: "image" },
        });
        ids.push(volume!.volumeId!);
      }
      const template = path.join(d.root, ".templates", templateName("ext4", size));
      for (const id of ids) {
        const img = path.join(d.root, "data", id);
        assert.match(run("filefrag", ["-v", img]).out, /shared/, "FIEMAP marks the clone's extents shared");
        assertClean(img);
        // btrfs: the image is NOCOW, as every image there is (and the template too, or they could not share).
        if (kind === "btrfs") for (const f of [img, template]) assert.match(run("lsattr", [f]).out.split(" ")[0]!, /C/);
      }
      assert.notEqual(uuidOf(path.join(d.root, "data", ids[0]!)), uuidOf(path.join(d.root, "data", ids[1]!)));
    });
  });
}
