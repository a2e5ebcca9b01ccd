/**
 * Reading a connection's first request before the HTTP/2 server does.
 *
 * Old kubelets put the socket's path in `:authority`, which Node's HTTP/2
 * server refuses (authority.ts). The connection guard (connection-guard.ts)
 * repairs that, but it moves every byte through JavaScript. Current
 * clients do not need it, and a client keeps one authority for all the
 * calls of a connection, so the first request tells which kind a
 * connection is:
 *
 *   - a valid authority: the bytes read so far are put back on the socket
 *     and the socket goes to nghttp2, which reads it directly from then on;
 *   - an invalid one: the connection goes through the guard.
 *
 * To see a request the server must first speak: gRPC clients wait for the
 * server's SETTINGS frame (its connection preface) before they send one.
 * So we send an empty SETTINGS (every setting at its default), and until
 * the hand-over we answer what a client expects answered on its own: the
 * ACK of our SETTINGS is taken out of the bytes (the server behind us sent
 * no SETTINGS yet and must not see an ACK for one), and PINGs are answered
 * here. Everything else — the client's own SETTINGS, its HEADERS,
 * WINDOW_UPDATEs — is kept in order and handed over. The server then sends
 * its own SETTINGS; a second SETTINGS frame is ordinary HTTP/2.
 */
import type { Socket } from "node:net";
import { HeaderCodec, isValidAuthority } from "./authority";
import { peekFirstAuthority } from "./authority-peek";
import { frame, FRAME_HEADER, FrameReader, type Frame, type HeaderBlock } from "./http2-frames";

const SETTINGS = 0x4;
const PING = 0x6;
const ACK = 0x1;
/** Sniffing stops, and nghttp2 judges, past this many bytes without a first request. */
const MAX_SNIFF_BYTES = 256 * 1024;

export type Decision =
  /** Hand the socket to the server as it is: its bytes were put back. */
  | { kind: "direct" }
  /** Serve it through the guard, starting with `bytes`. */
  | { kind: "guard"; bytes: Buffer };

/**
 * Read the start of a connection and decide. `decide` is called once,
 * unless the socket closes first; the sniffer's listeners are gone by then.
 */
export function sniffFirstRequest(socket: Socket, decide: (d: Decision) => void): void {
  const kept: Buffer[] = [];
  let seen = 0;
  let settingsSent = false;
  let acked = false;
  let authorityBad: boolean | undefined;
  let done = false;

  const finish = (d: Decision | "direct") => {
    if (done) return;
    done = true;
    socket.off("data", onData);
    socket.off("close", onClose);
    if (d === "direct") {
      socket.pause();
      const bytes = Buffer.concat([...kept, reader.takeRest()]);
      if (bytes.length > 0) socket.unshift(bytes);
      decide({ kind: "direct" });
    } else decide(d);
  };

  const reader = new FrameReader({
    preface: (raw) => {
      kept.push(Buffer.from(raw));
      socket.write(frame(SETTINGS, 0, 0, Buffer.alloc(0)));
      settingsSent = true;
    },
    frame: (f: Frame) => {
      if (f.type === SETTINGS && f.flags & ACK && settingsSent && !acked) {
        acked = true; // the ACK of our SETTINGS: for us only
      } else if (f.type === PING && !(f.flags & ACK) && f.raw.length === FRAME_HEADER + 8) {
        socket.write(frame(PING, ACK, 0, f.raw.subarray(FRAME_HEADER)));
      } else {
        kept.push(f.raw);
      }
    },
    headers: (h: HeaderBlock) => {
      kept.push(...h.frames);
      if (authorityBad !== undefined) return;
      // Most blocks say it plainly; the rest go through a full HPACK decoder.
      let authority = peekFirstAuthority(h.block);
      if (authority === undefined) {
        try {
          authority = new HeaderCodec().decode(h.block).find((x) => x.name === ":authority")?.value ?? null;
        } catch {
          authority = null; // not decodable: the server will say so
        }
      }
      authorityBad = authority !== null && !isValidAuthority(authority);
    },
  });

  function onData(chunk: Buffer): void {
    seen += chunk.length;
    if (!reader.push(chunk) || seen > MAX_SNIFF_BYTES) return finish("direct");
    if (authorityBad === undefined || !acked) return;
    if (!authorityBad) return finish("direct");
    finish({ kind: "guard", bytes: Buffer.concat([...kept, reader.takeRest()]) });
  }
  function onClose(): void {
    done = true;
    socket.off("data", onData);
  }
  socket.on("data", onData);
  socket.on("close", onClose);
}
