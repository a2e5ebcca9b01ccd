// The lab's first view in a real browser: one call stepped through on each
// transport, the highlighted bytes checked against the codec's own dump,
// the keyboard, and a fault scenario on the two-lane timeline.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { dumpMessage } from "../../src/rpc-demo/codecs/dump";
import { schemas } from "../../src/rpc-demo/codecs/schema";
import { describeBrowser, openLab, screenshotPath, type LabBrowser } from "./browser";

/** Offsets of the grid's bytes that have a class. */
const offsetsWith = (page: Page, cls: string) => page.$$eval(`.step-detail .hex .b.${cls}`, (els) => els.map((e) => Number(e.getAttribute("data-offset"))));
const range = (offset: number, length: number) => Array.from({ length }, (_, i) => offset + i);

async function runCall(page: Page, choice: { transport: string; method?: string; codec?: string; fault?: string }): Promise<void> {
  await page.click("#tab-call");
  await page.selectOption("#call-transport", choice.transport);
  await page.selectOption("#call-fault", choice.fault ?? "");
  await page.selectOption("#call-method", choice.method ?? "add");
  await page.selectOption("#call-codec", choice.codec ?? "protobuf");
  await page.click("#call-run");
  await page.waitForSelector("#call-run:not([disabled])");
  await page.waitForFunction(`document.querySelector("#call-result h3 + p")?.textContent.includes("transport ${choice.transport}")`);
}

/** Open the first step whose list entry matches. */
async function openStep(page: Page, title: RegExp): Promise<void> {
  const buttons = await page.$$(".steps button");
  for (const b of buttons) {
    if (title.test((await b.textContent()) ?? "")) {
      await b.click();
      return;
    }
  }
  throw new Error(`no step matches ${title}`);
}

const FRAMED: Record<string, { step: RegExp; first: RegExp }> = {
  tcp: { step: /framing: put a call header and a record mark/, first: /TCP record mark/ },
  udp: { step: /framing: put a call header in front of the arguments/, first: /xid/ },
  http2: { step: /write \d+ bytes to the TCP connection: DATA/, first: /HTTP\/2 frame header/ },
};

describeBrowser("lab, view 1: one call, three layers (Chromium)", function () {
  this.timeout(60_000);
  let b: LabBrowser;
  before(async () => (b = await openLab()));
  after(async () => b?.close());

  // The codec's own annotation of the request the page's default Add sends.
  const request = Buffer.from(protobufCodec.encode(Playground.add.request, { a: 2n, b: 40n }));
  const rows = dumpMessage(request, schemas().message(Playground.add.request.fullName));

  for (const transport of ["tcp", "udp", "http2"]) {
    it(`over ${transport}: steps through the call, and every highlighted byte of the request is the codec's own tag or value, in its field`, async () => {
      const page = b.page;
      await runCall(page, { transport });
      assert.match((await page.textContent("#call-status, #view-call .status")) ?? "", /Result: \{"sum":"42"\}/);
      // Step through every step with the Next button, then back to the start with the keyboard.
      const total = Number((await page.textContent("#step-counter"))!.split("/")[1]);
      for (let i = 1; i < total; i++) await page.click("#step-next");
      assert.equal((await page.textContent("#step-counter"))!.trim(), `${total} / ${total}`);
      assert.ok(await page.isDisabled("#step-next"));
      await page.focus("#step-prev");
      for (let i = 1; i < total; i++) await page.keyboard.press("p");
      assert.equal((await page.textContent("#step-counter"))!.trim(), `1 / ${total}`);

      await openStep(page, FRAMED[transport]!.step);
      const message = await offsetsWith(page, "k-message");
      const hex = await page.$$eval(".step-detail .hex .b.k-message", (els) => els.map((e) => e.textContent).join(""));
      assert.equal(hex, request.toString("hex"), "the message inside the frame is the encoded request");
      const start = message[0]!;
      for (let k = 0; k < request.length; k++) {
        await page.hover(`.step-detail .hex .b[data-offset="${start + k}"]`);
        const row = rows.find((r) => k >= r.offset && k < r.offset + r.length)!;
        assert.deepEqual(await offsetsWith(page, "hl-item"), range(start + row.offset, row.length), `byte ${k} of the message: ${row.text}`);
        assert.deepEqual(await offsetsWith(page, "hl-field"), range(start + row.field!.offset, row.field!.length), `byte ${k}: its whole field`);
        assert.match((await page.textContent(".step-detail .byte-info"))!, new RegExp(row.text.replace(/[()]/g, "\\$&")));
      }
      // The frame's first byte names the frame's own header.
      await page.hover('.step-detail .hex .b[data-offset="0"]');
      assert.match((await page.textContent(".step-detail .byte-info"))!, FRAMED[transport]!.first);
    });
  }

  it("over HTTP/2 the request HEADERS frame shows its 9-byte header and each HPACK header; the arrow keys move from byte to byte", async () => {
    const page = b.page;
    await runCall(page, { transport: "http2" });
    await openStep(page, /write \d+ bytes to the TCP connection: HEADERS/);
    await page.focus('.step-detail .hex .b[data-offset="0"]');
    assert.deepEqual(await offsetsWith(page, "hl-item"), [0, 1, 2], "the 3-byte length of the frame header");
    for (let i = 0; i < 9; i++) await page.keyboard.press("ArrowRight");
    const info = (await page.textContent(".step-detail .byte-info"))!;
    assert.match(info, /HPACK indexed field 3 \(static table\): :method: POST/);
    assert.match(info, /HEADERS frame, stream 1/);
    const group = await offsetsWith(page, "hl-group");
    assert.equal(group[0], 0, "the whole frame, from its header");
    const path = await page.$$eval(".step-detail .hex .b", (els) => els.findIndex((e) => /:path: \/csilab/.test(e.getAttribute("aria-label") ?? "")));
    await page.hover(`.step-detail .hex .b[data-offset="${path}"]`);
    assert.match((await page.textContent(".step-detail .byte-info"))!, /:path: \/csilab\.rpcdemo\.v1\.Playground\/Add/);
    await page.evaluate(`document.querySelector(".step-detail .byte-info").scrollIntoView({ block: "end" })`);
    await page.hover(`.step-detail .hex .b[data-offset="${path}"]`); // the page moved under the pointer
    await page.screenshot({ path: screenshotPath("lab-call.png") });
  });

  it("faults on the timeline: over UDP a lost request is resent and runs once; over TCP a duplicate runs twice", async () => {
    const page = b.page;
    await runCall(page, { transport: "udp", method: "increment", fault: "drop" });
    assert.equal(await page.getAttribute(".runs", "data-runs"), "1");
    const svg = (await page.textContent("#call-result svg"))!;
    assert.match(svg, /lost/);
    assert.match(svg, /resend/);
    assert.match(svg, /cache hit/);
    assert.match((await page.textContent("#timeline-words"))!, /the request is lost on the way/);
    const timeline = await page.$("section[aria-labelledby=timeline-h]");
    await timeline!.scrollIntoViewIfNeeded();
    await timeline!.screenshot({ path: screenshotPath("lab-fault.png") });

    await runCall(page, { transport: "tcp", method: "increment", fault: "duplicate" });
    assert.equal(await page.getAttribute(".runs", "data-runs"), "2");
    assert.match((await page.textContent(".runs"))!, /ran Increment 2 times/);
  });

  it("JSON over HTTP/2: the message is shown as text, and the layer bar says in words where the time went", async () => {
    const page = b.page;
    await runCall(page, { transport: "http2", codec: "json" });
    await openStep(page, /codec: encode the arguments \(json/);
    assert.match((await page.textContent(".step-detail"))!, /\{"a":"2","b":"40"\}/);
    assert.match((await page.textContent("section[aria-labelledby=layers-h] p"))!, /From the first step to the last: [\d.]+ ms\. The \S+ layer took the most/);
    await openStep(page, /framing: request DATA/);
    await page.hover('.step-detail .hex .b[data-offset="1"]');
    await page.keyboard.press("t");
    assert.ok(await page.$eval("html", (e) => e.classList.contains("dark")));
    await page.evaluate(`document.querySelector(".step-detail .byte-info").scrollIntoView({ block: "end" })`);
    await page.screenshot({ path: screenshotPath("lab-dark.png") });
    await page.keyboard.press("t");
  });
});
