import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WatchedFile } from "./watched-file.js";

describe("WatchedFile", () => {
  let dir: string;
  let seen: string[];
  let file: WatchedFile | undefined;

  const watch = (path: string, knownText?: string) => {
    file = new WatchedFile(path, (text) => void seen.push(text), { debounceMs: 20 });
    file.start(knownText);
    return file;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "remora-watched-file-"));
    seen = [];
  });

  afterEach(() => {
    file?.stop();
    file = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports in-place writes and editors' write-then-rename saves", async () => {
    const path = join(dir, "config.yaml");
    writeFileSync(path, "a");
    watch(path, "a");
    writeFileSync(path, "b");
    await vi.waitFor(() => expect(seen).toEqual(["b"]));
    for (const text of ["c", "d"]) {
      writeFileSync(join(dir, ".config.yaml.swp"), text);
      renameSync(join(dir, ".config.yaml.swp"), path);
      await vi.waitFor(() => expect(seen.at(-1)).toBe(text));
    }
    expect(seen).toEqual(["b", "c", "d"]);
  });

  it("follows a Kubernetes ConfigMap volume's ..data symlink swap", async () => {
    // The kubelet's layout: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp dir>.
    const version = (name: string, text: string) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "config.yaml"), text);
    };
    version("..2026_01", "v1");
    symlinkSync("..2026_01", join(dir, "..data"));
    symlinkSync("..data/config.yaml", join(dir, "config.yaml"));
    watch(join(dir, "config.yaml"), "v1");
    version("..2026_02", "v2");
    symlinkSync("..2026_02", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    rmSync(join(dir, "..2026_01"), { recursive: true });
    await vi.waitFor(() => expect(seen).toEqual(["v2"]));
  });

  it("follows a file symlinked from another directory, saved where it lives", async () => {
    const real = join(dir, "real");
    mkdirSync(real);
    writeFileSync(join(real, "remora.yaml"), "a");
    mkdirSync(join(dir, "link"));
    const path = join(dir, "link", "remora.yaml");
    symlinkSync(join(real, "remora.yaml"), path);
    watch(path, "a");
    writeFileSync(join(real, ".remora.yaml.tmp"), "b");
    renameSync(join(real, ".remora.yaml.tmp"), join(real, "remora.yaml"));
    await vi.waitFor(() => expect(seen).toEqual(["b"]));
  });

  it("check() picks up a change made before the watch began", async () => {
    const path = join(dir, "config.yaml");
    writeFileSync(path, "changed meanwhile");
    watch(path, "as loaded").check();
    await vi.waitFor(() => expect(seen).toEqual(["changed meanwhile"]));
  });

  it("reports an unreadable file once and the next good text after it", async () => {
    const path = join(dir, "config.yaml");
    writeFileSync(path, "a");
    const unreadable = vi.fn();
    file = new WatchedFile(path, (text) => void seen.push(text), {
      debounceMs: 20,
      onUnreadable: unreadable,
    });
    file.start("a");
    rmSync(path);
    await vi.waitFor(() => expect(unreadable).toHaveBeenCalledTimes(1));
    writeFileSync(path, "a");
    await vi.waitFor(() => expect(seen).toEqual(["a"]));
    expect(unreadable).toHaveBeenCalledTimes(1);
  });
});
