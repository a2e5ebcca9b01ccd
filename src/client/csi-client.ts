/**
 * A small promise-based CSI client.
 *
 * Used by the test suites, the benchmark and the RPC playground's CSI
 * walkthrough. It is built from the same ts-proto service definitions the
 * server uses, so request and reply types are checked at compile time;
 * underneath it is an ordinary grpc-js client on the driver's socket.
 */
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { ControllerDefinition, GroupControllerDefinition, IdentityDefinition, NodeDefinition } from "../gen/csi";

/** A method of a ts-proto generic service definition: its name and its two message codecs. */
interface MethodDef<Req, Res> {
  name: string;
  requestType: { encode(message: Req): { finish(): Uint8Array } };
  responseType: { decode(input: Uint8Array): Res };
}

interface ServiceDef {
  fullName: string;
  methods: object;
}

type Promised<D extends ServiceDef> = {
  [K in keyof D["methods"]]: D["methods"][K] extends MethodDef<infer Req, infer Res> ? (req?: Req, opts?: CallOpts) => Promise<Res> : never;
};

export interface CallOpts {
  /** Milliseconds from now. */
  timeoutMs?: number;
  metadata?: Record<string, string>;
}

export interface CsiClient {
  identity: Promised<typeof IdentityDefinition>;
  controller: Promised<typeof ControllerDefinition>;
  node: Promised<typeof NodeDefinition>;
  groupController: Promised<typeof GroupControllerDefinition>;
  close(): void;
}

export interface ConnectOptions {
  /** Override the HTTP/2 :authority (tests use a socket path, as old kubelets did). */
  authority?: string;
}

/** Connect to an endpoint such as unix:///tmp/csi.sock or tcp://127.0.0.1:10000. */
export function connect(endpoint: string, opts: ConnectOptions = {}): CsiClient {
  const target = endpoint.startsWith("tcp://") ? endpoint.slice("tcp://".length) : endpoint;
  // A subchannel pool of its own: grpc-js otherwise shares connections between clients of the
  // same address, and a new client would inherit the back-off of an old one whose driver died.
  const channelOpts: Record<string, string | number> = { "grpc.max_receive_message_length": 16 * 1024 * 1024, "grpc.use_local_subchannel_pool": 1 };
  if (opts.authority) channelOpts["grpc.default_authority"] = opts.authority;
  const client = new Client(target, credentials.createInsecure(), channelOpts);
  const wrap = <D extends ServiceDef>(service: D): Promised<D> => {
    const out: Record<string, unknown> = {};
    for (const [name, def] of Object.entries(service.methods) as [string, MethodDef<unknown, unknown>][]) {
      out[name] = (req: unknown = {}, callOpts: CallOpts = {}) =>
        new Promise((resolve, reject) => {
          const md = new Metadata();
          for (const [k, v] of Object.entries(callOpts.metadata ?? {})) md.set(k, v);
          const deadline = callOpts.timeoutMs !== undefined ? Date.now() + callOpts.timeoutMs : Infinity;
          client.makeUnaryRequest(
            `/${service.fullName}/${def.name}`,
            (v: unknown) => Buffer.from(def.requestType.encode(v).finish()),
            (b: Buffer) => def.responseType.decode(b),
            req,
            md,
            { deadline },
            (err: ServiceError | null, res?: unknown) => (err ? reject(err) : resolve(res)),
          );
        });
    }
    return out as Promised<D>;
  };
  return {
    identity: wrap(IdentityDefinition),
    controller: wrap(ControllerDefinition),
    node: wrap(NodeDefinition),
    groupController: wrap(GroupControllerDefinition),
    close: () => client.close(),
  };
}
