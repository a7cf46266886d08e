/**
 * Headless Chromium for tests that must see what a page rendered (the DOM after its script ran),
 * not the HTML served. Debian's `chromium` package; .ci/run installs it.
 */
import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** $CHROMIUM, else the first of chromium / chromium-browser / google-chrome on PATH. */
export function findChromium(): string | undefined {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
      const path = join(dir, name);
      try {
        accessSync(path, constants.X_OK);
        return path;
      } catch {}
    }
  }
  return undefined;
}

/** CI=true (or any value but "", "0", "false"): a missing browser fails instead of skipping. */
export const IN_CI = !["", "0", "false"].includes((process.env.CI ?? "").toLowerCase());

/**
 * Load `url`, let the page run for `budgetMs` of virtual time (timers fire without waiting in
 * real time; network fetches still complete), and return the serialized DOM.
 */
export async function renderedDom(browser: string, url: string, budgetMs: number): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), "remora-chromium-"));
  try {
    const { stdout } = await run(
      browser,
      [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        `--virtual-time-budget=${budgetMs}`,
        "--dump-dom",
        url,
      ],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
    return stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The inner text of the first element whose opening tag matches `attribute` (e.g. `id="x"`). */
export function textOf(dom: string, attribute: string): string | undefined {
  const start = dom.indexOf(attribute);
  if (start === -1) return undefined;
  const open = dom.indexOf(">", start);
  const close = dom.indexOf("</", open);
  return decode(dom.slice(open + 1, close).replace(/<[^>]*>/g, ""));
}

/** The serialized element (tag and all) whose opening tag carries `attribute`, for a table row. */
export function rowOf(dom: string, attribute: string): string | undefined {
  const at = dom.indexOf(attribute);
  if (at === -1) return undefined;
  const start = dom.lastIndexOf("<tr", at);
  const end = dom.indexOf("</tr>", at);
  return dom.slice(start, end + 5);
}

/** Cell texts of a serialized table row. */
export function cells(row: string): string[] {
  return [...row.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) =>
    decode(m[1]!.replace(/<title>[\s\S]*?<\/title>/g, "").replace(/<[^>]*>/g, "")).trim(),
  );
}

function decode(text: string): string {
  return text
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&nbsp;/g, "\u00a0")
    .replace(/&amp;/g, "&");
}
