/**
 * Test helper: read a Server-Sent Events stream (the driver's /events, the
 * lab's proxy of it) as parsed events, until a condition holds.
 */
import * as http from "node:http";

export interface SseEvent {
  event: string;
  data: unknown;
}

export interface SseReader {
  readonly events: SseEvent[];
  /** Resolves once `pred` holds for the events so far; rejects after `ms`. */
  until(pred: (events: SseEvent[]) => boolean, ms?: number): Promise<SseEvent[]>;
  close(): void;
}

export function readSse(url: string): Promise<SseReader> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const waiters = new Set<() => void>();
    const req = http.get(url, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`GET ${url}: ${res.statusCode}`));
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buf += chunk;
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length) events.push({ event, data: JSON.parse(data.join("\n")) });
        }
        for (const w of waiters) w();
      });
      resolve({
        events,
        until(pred, ms = 10_000) {
          return new Promise((ok, fail) => {
            const check = () => {
              if (!pred(events)) return;
              waiters.delete(check);
              clearTimeout(timer);
              ok(events);
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`not seen in ${ms} ms; events so far:\n${JSON.stringify(events, null, 1).slice(0, 4000)}`));
            }, ms);
            waiters.add(check);
            check();
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on("error", reject);
  });
}
