/**
 * ValidateVolumeCapabilities: "could this existing volume be used so?"
 *
 * Kubernetes calls it for pre-provisioned volumes, to check that a PV's
 * access modes are ones the driver can really deliver. The answer is not an
 * error but a verdict: `confirmed` echoes what was asked when every
 * capability is supported, otherwise `message` says what is not.
 */
import type { ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse } from "../gen/csi";
import { toCapabilities, unsupportedReason } from "../csi/capabilities";
import { notFound } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { lookUp } from "./volume-view";
import { checkMutableParameters, mutableParametersProblem } from "./mutable-parameters";
import { defining } from "./parameters";

export const validateVolumeCapabilities = defineRpc<ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse>({
  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const caps = toCapabilities(req.volumeCapabilities, "volume_capabilities");
    const parameters = checkMap(req.parameters, "parameters");
    const mutableParameters = checkMap(req.mutableParameters, "mutable_parameters");
    checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");

    const { backend, record } = await lookUp(driver, volumeId);
    if (!record) throw notFound(`volume ${volumeId} does not exist`);

    for (const cap of caps) {
      const why = unsupportedReason(cap, backend!.profile(record));
      if (why) return { message: why };
    }
    if (Object.keys(parameters).length > 0 && defining(parameters) !== defining(record.parameters)) {
      return { message: "the parameters differ from those the volume was created with" };
    }
    const mutableProblem = mutableParametersProblem(mutableParameters);
    if (mutableProblem) return { message: mutableProblem };
    const canonical = checkMutableParameters(mutableParameters);
    const differing = Object.keys(canonical).filter((k) => canonical[k] !== record.mutableParameters[k]);
    if (differing.length > 0) {
      const now = differing.map((k) => `${k} is ${JSON.stringify(record.mutableParameters[k] ?? "unset")}`);
      return { message: `the volume's mutable parameters differ: ${now.join(", ")}` };
    }
    return {
      confirmed: {
        volumeContext: req.volumeContext,
        volumeCapabilities: req.volumeCapabilities,
        parameters: req.parameters,
        mutableParameters: req.mutableParameters,
      },
    };
  },
});
