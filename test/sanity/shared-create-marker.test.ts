// A shared CreateVolume writes the volume's marker on the share before its commit (so a volume never exists
// without one). A create whose commit then surely did not happen takes its own marker away again: left, it
// would claim for a name a directory the driver never made (a later expand or modify of the ID would call
// the volume's data lost). It takes only the marker it wrote: shares are used by several drivers at once, and
// another's, written at that key meanwhile, stays as it is. The moments are picked by swap-hook.ts.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { startSwapDriver } from "./swap-driver";
import { locationKey } from "../../src/backends/nfs/volume-id";

describe("A shared CreateVolume whose commit fails", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver()));
  after(async () => destroyDriver(d));

  const request = () => ({ name: uniqueName("pvc"), volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)], parameters: NFS_LOCAL.parameters(d) });
  const markerOf = (name: string) => path.join(d.share, ".csi-lab", "volumes", `${locationKey({ server: "", share: d.share, subDir: name })}.json`);
  const tmp = () => path.join(d.share, ".csi-lab", "tmp");

  it("(its temp removed from .csi-lab/tmp) answers ABORTED and leaves no marker of it; the retry makes the volume and its marker", async () => {
    const req = request();
    await fsp.mkdir(path.join(d.share, ".csi-lab"), { recursive: true });
    // The agent's first rename of the call is the marker's: the temp goes just before it.
    await fsp.writeFile(swapFile, `rename\nrm -rf ${shellQuote(tmp())}/*\n`);
    await expectCode(d.client.controller.createVolume(req), Code.ABORTED, /was removed .*nothing was kept.*retry/);
    assert.equal(existsSync(swapFile), false, "the temp was removed");
    assert.equal(existsSync(markerOf(req.name)), false, "no marker claims the directory that was never made");
    assert.deepEqual((await fsp.readdir(path.join(d.share, ".csi-lab", "volumes"))).filter((f) => f.endsWith(".tmp")), []);
    const volumeId = (await d.client.controller.createVolume(req)).volume!.volumeId!;
    assert.equal(JSON.parse(await fsp.readFile(markerOf(req.name), "utf8")).volumeId, volumeId);
  });

  it("leaves another driver's marker, written at that key after its own, as it is", async () => {
    const req = request();
    const marker = markerOf(req.name);
    const theirs = JSON.stringify({ version: 4, volumeId: "theirs", subDir: req.name, name: "their-claim", dir: "1:2" }) + "\n";
    await fsp.writeFile(path.join(d.dir, "theirs.json"), theirs);
    // At the marker's write the temp goes; at the agent's next rename (the clean-up's) another driver writes its marker there.
    const next = `rename\ncp ${shellQuote(path.join(d.dir, "theirs.json"))} ${shellQuote(marker + ".new")}\nmv ${shellQuote(marker + ".new")} ${shellQuote(marker)}\n`;
    await fsp.writeFile(swapFile, `rename\nrm -rf ${shellQuote(tmp())}/*\nprintf '%s' ${shellQuote(next)} > ${shellQuote(swapFile)}\n`);
    await expectCode(d.client.controller.createVolume(req), Code.ABORTED, /was removed .*nothing was kept.*retry/);
    assert.equal(existsSync(swapFile), false, "the other driver wrote its marker");
    assert.equal(await fsp.readFile(marker, "utf8"), theirs, "their marker is there, whole");
    assert.deepEqual((await fsp.readdir(path.dirname(marker))).filter((f) => f.endsWith(".tmp")), []);
  });
});
