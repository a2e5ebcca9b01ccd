// The image and the manifests agree: the Dockerfile's entry point is the
// csi-lab command and every driver container runs its `driver`
// subcommand; the runtime stage installs the tools the node plugin calls.
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { render } from "./lib/render";
import { FIXTURES, REPO } from "./lib/targets";
import { workloadsOf } from "./lib/workloads";

const dockerfile = readFileSync(path.join(REPO, "Dockerfile"), "utf8");

describe("deploy: image and manifests agree", () => {
  it("the runtime stage is Node 24 slim (a maintained LTS line) and installs mount, NFS and mkfs tools", () => {
    const stages = dockerfile.split(/^FROM /m).slice(1);
    assert.equal(stages.length, 2, "two stages");
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    for (const pkg of ["util-linux", "mount", "nfs-common", "xfsprogs", "e2fsprogs"]) {
      assert.match(stages[1]!, new RegExp(`apt-get install[^\\n]*\\b${pkg}\\b`), `${pkg} is installed in the runtime stage`);
    }
  });

  it("the entry point is csi-lab, and every driver container runs `driver`", () => {
    assert.match(dockerfile, /^ENTRYPOINT \["csi-lab"\]$/m);
    assert.match(dockerfile, /ln -s \/opt\/csi-lab\/bin\/csi-lab\.js \/usr\/local\/bin\/csi-lab/);
    const drivers = workloadsOf(render(path.join(FIXTURES, "all-components")))
      .flatMap((w) => w.containers)
      .filter((c) => c.image.startsWith("csi-lab:"));
    assert.equal(drivers.length, 2, "the node plugin and the controller");
    for (const c of drivers) assert.equal(c.args[0], "driver", `${c.name} runs csi-lab driver`);
  });
});
