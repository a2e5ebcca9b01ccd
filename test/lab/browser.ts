/**
 * Test helper: the lab's page in a real browser — Debian's Chromium
 * (/usr/bin/chromium), driven by playwright-core, which uses the browser
 * it is given and downloads none.
 *
 * The flags keep Chromium from reaching for the network (this machine has
 * none: its background services would only fail and retry) and from
 * needing what a throwaway root lacks (a GPU, a sandbox helper, /dev/pts);
 * each run gets a fresh profile directory, removed afterwards. Where no
 * Chromium is installed the browser tests skip with one line saying what
 * to install.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { startLab, type RunningLab } from "../../src/lab/server";

export const CHROMIUM = process.env["CHROMIUM"] ?? "/usr/bin/chromium";
export const INSTALL_HINT = "needs Chromium: apt-get install chromium (Debian; the browser tests drive /usr/bin/chromium with playwright-core)";

export function browserAvailable(): boolean {
  return existsSync(CHROMIUM);
}

let hinted = false;

/** `describe` where a browser is installed; elsewhere one pending line, for all the browser suites, naming what to install. */
export function describeBrowser(title: string, body: (this: Mocha.Suite) => void): void {
  if (browserAvailable()) return void describe(title, body);
  if (hinted) return;
  hinted = true;
  describe("the lab in a browser", () =>
    it(INSTALL_HINT, function () {
      this.skip();
    }),
  );
}

export const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface LabBrowser {
  readonly lab: RunningLab;
  readonly page: Page;
  close(): Promise<void>;
}

/** A lab server on a free port and a page showing it. */
export async function openLab(query = ""): Promise<LabBrowser> {
  const { chromium } = await import("playwright-core");
  const lab = await startLab({ host: "127.0.0.1", port: 0, driver: "127.0.0.1:9810" });
  const profile = mkdtempSync(path.join(os.tmpdir(), "csi-lab-chromium-"));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1440, height: 1000 },
      deviceScaleFactor: 1,
      colorScheme: "light",
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // A failed request shows in the page as it should (a driver that is not there); a script error never should.
    page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
    await page.goto(lab.url + query);
    return {
      lab,
      page,
      close: async () => {
        await context?.close();
        await lab.close();
        rmSync(profile, { recursive: true, force: true });
        if (errors.length) throw new Error(`the page reported errors:\n${errors.join("\n")}`);
      },
    };
  } catch (err) {
    await context?.close();
    await lab.close();
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Where screenshots go: docs/ when LAB_SCREENSHOTS=docs (how the README's
 * pictures are made: `LAB_SCREENSHOTS=docs npm test`), else a temporary directory.
 */
export function screenshotPath(name: string): string {
  const dir = process.env["LAB_SCREENSHOTS"] === "docs" ? path.join(__dirname, "../../../docs") : path.join(os.tmpdir(), "csi-lab-screenshots");
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
