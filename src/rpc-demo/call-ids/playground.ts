/**
 * The demo service's call IDs, shared by every client stub and server.
 *
 * The numeric program number is from the range RFC 5531 leaves to anyone
 * (0x20000000–0x3fffffff); the names come from proto/rpc-demo.proto.
 */
import {
  AddReply,
  AddRequest,
  FailReply,
  FailRequest,
  IncrementReply,
  IncrementRequest,
  Sample,
  SleepReply,
  SleepRequest,
} from "../../gen/rpc-demo";
import { messageType } from "../codecs/codec";
import { Registry, type Procedure } from "./registry";

export const PLAYGROUND_PROGRAM = 0x2000c51a;
export const PLAYGROUND_VERSION = 1;
const SERVICE = "csilab.rpcdemo.v1.Playground";

function procedure<Req, Res>(
  name: string,
  procedureNumber: number,
  request: [string, Procedure<Req, Res>["request"]["fns"]],
  response: [string, Procedure<Req, Res>["response"]["fns"]],
  idempotent: boolean,
): Procedure<Req, Res> {
  return {
    name,
    path: `/${SERVICE}/${name}`,
    number: { program: PLAYGROUND_PROGRAM, version: PLAYGROUND_VERSION, procedure: procedureNumber },
    request: messageType(`csilab.rpcdemo.v1.${request[0]}`, request[1]),
    response: messageType(`csilab.rpcdemo.v1.${response[0]}`, response[1]),
    idempotent,
  };
}

export const Playground = {
  add: procedure<AddRequest, AddReply>("Add", 1, ["AddRequest", AddRequest], ["AddReply", AddReply], true),
  echo: procedure<Sample, Sample>("Echo", 2, ["Sample", Sample], ["Sample", Sample], true),
  increment: procedure<IncrementRequest, IncrementReply>("Increment", 3, ["IncrementRequest", IncrementRequest], ["IncrementReply", IncrementReply], false),
  sleep: procedure<SleepRequest, SleepReply>("Sleep", 4, ["SleepRequest", SleepRequest], ["SleepReply", SleepReply], true),
  fail: procedure<FailRequest, FailReply>("Fail", 5, ["FailRequest", FailRequest], ["FailReply", FailReply], true),
} as const;

export type PlaygroundMethod = keyof typeof Playground;

export function playgroundRegistry(): Registry {
  return new Registry(Object.values(Playground));
}
