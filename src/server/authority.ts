/**
 * Accepting the `:authority` that older kubelets send.
 *
 * Every HTTP/2 request names its target host in the `:authority` pseudo-
 * header. Over a unix socket there is no host, and older Go gRPC clients
 * (kubelet before 1.26, some sidecars) put the socket's path there instead:
 * `:authority: /var/lib/kubelet/plugins/…/csi.sock`. A path is not a valid
 * authority, and Node's HTTP/2 server (nghttp2) resets such a stream with
 * PROTOCOL_ERROR before any of our code runs — the driver would look dead
 * to those kubelets. Other Node drivers ship a separate proxy for this.
 *
 * We fix it in-process, in the connection guard that stands between each
 * client socket and the gRPC server (connection-guard.ts). HTTP/2 headers
 * are HPACK-compressed with state that spans the whole connection, so a
 * header cannot be patched in place: the guard decodes every header block
 * anyway (it also reads `grpc-encoding`), and once a client has sent a bad
 * authority it encodes every block again for the server, with the bad
 * authority replaced by "localhost". Clients with a valid authority (every
 * current one) have their header frames forwarded byte for byte.
 */
import type { Compressor, Decompressor } from "hpack.js";
import type hpackModule from "hpack.js";

// Loaded on first use: only connections whose first request a quick look
// could not judge (authority-peek.ts) need a decoder, and hpack.js with the
// stream library it brings costs about 12 ms of start-up.
let loaded: typeof hpackModule | undefined;
function hpack(): typeof hpackModule {
  return (loaded ??= require("hpack.js") as typeof hpackModule);
}

/** SETTINGS_HEADER_TABLE_SIZE that Node's server advertises unless told otherwise. */
const TABLE_SIZE = 4096;

// RFC 3986 authority: host (reg-name, IPv4, [IPv6]), optional port,
// optional userinfo. Anything with "/" or whitespace is not one.
const VALID_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%[\]]*$/;

export function isValidAuthority(value: string): boolean {
  return VALID_AUTHORITY.test(value);
}

export interface Header {
  name: string;
  value: string;
  neverIndex?: boolean;
}

export function hasBadAuthority(headers: readonly Header[]): boolean {
  return headers.some((h) => h.name === ":authority" && !isValidAuthority(h.value));
}

/** The headers with any invalid :authority replaced by "localhost". */
export function fixAuthority(headers: readonly Header[], onRewrite: (from: string) => void): Header[] {
  return headers.map((h) => {
    if (h.name !== ":authority" || isValidAuthority(h.value)) return h;
    onRewrite(h.value);
    return { name: h.name, value: "localhost" };
  });
}

/** One direction's HPACK state: a decoder for what the client sends, an encoder for what we re-send. */
export class HeaderCodec {
  private readonly decomp: Decompressor = hpack().decompressor.create({ table: { maxSize: TABLE_SIZE } });
  private readonly comp: Compressor = hpack().compressor.create({ table: { maxSize: TABLE_SIZE } });

  decode(block: Buffer): Header[] {
    this.decomp.write(block);
    this.decomp.execute();
    const out: Header[] = [];
    for (let h = this.decomp.read() as Header | null; h !== null; h = this.decomp.read() as Header | null) out.push(h);
    return out;
  }

  encode(headers: Header[]): Buffer {
    this.comp.write(headers);
    const parts: Buffer[] = [];
    for (let b = this.comp.read() as Buffer | null; b !== null; b = this.comp.read() as Buffer | null) parts.push(b);
    return Buffer.concat(parts);
  }
}
