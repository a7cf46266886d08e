import { execFileSync } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DevIdentity, type DevIdentityOptions, installOnce } from "./dev-identity.js";
import { type DevIdentitySettings, defaultStateDir } from "./dev-state.js";
import { type IdentityLogger, WorkloadIdentity } from "./workload-identity.js";

const HOUR = 3_600_000;

interface LogEntry {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger(entries: LogEntry[]): IdentityLogger {
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) =>
    void entries.push({ level, obj, msg });
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  } as unknown as IdentityLogger;
}

function openssl(...args: string[]): string {
  return execFileSync("openssl", args, { stdio: "pipe" }).toString();
}

describe("DevIdentity", () => {
  let state: string;
  let logs: LogEntry[];
  const started: Array<{ close(): void }> = [];
  const settings = (extra: Partial<DevIdentitySettings> = {}): DevIdentitySettings => ({
    namespace: "default",
    serviceAccount: "reviews",
    trustDomain: "cluster.local",
    stateDir: state,
    ...extra,
  });
  const dev = (options: DevIdentityOptions = {}, extra: Partial<DevIdentitySettings> = {}) => {
    const identity = new DevIdentity(settings(extra), {
      logger: recordingLogger(logs),
      ...options,
    });
    started.push(identity);
    return identity;
  };
  const serialOnDisk = (identity: DevIdentity) =>
    new X509Certificate(readFileSync(identity.paths.certFile)).serialNumber.toUpperCase();
  const mode = (path: string) => statSync(path).mode & 0o777;

  beforeEach(() => {
    state = mkdtempSync(join(tmpdir(), "remora-dev-"));
    logs = [];
  });

  afterEach(() => {
    for (const identity of started) identity.close();
    started.length = 0;
    rmSync(state, { recursive: true, force: true });
  });

  it("first start makes a CA and a workload certificate that openssl verifies", async () => {
    const identity = dev();
    const done = await identity.start();
    const paths = identity.paths;
    expect(paths.caCert).toBe(join(state, "dev-mtls", "ca", "ca.crt"));
    expect(paths.certFile).toBe(
      join(state, "dev-mtls", "workloads", "default", "reviews", "tls.crt"),
    );
    expect(done).toMatchObject({ ca: "created", issuedBecause: "missing" });
    expect(openssl("verify", "-CAfile", paths.caCert, paths.certFile).trim()).toBe(
      `${paths.certFile}: OK`,
    );
    expect(openssl("verify", "-CAfile", paths.caFile, paths.caCert).trim()).toBe(
      `${paths.caCert}: OK`,
    );
    const leaf = new X509Certificate(readFileSync(paths.certFile));
    expect(leaf.subjectAltName).toBe("URI:spiffe://cluster.local/ns/default/sa/reviews");
    expect(leaf.checkPrivateKey(createPrivateKey(readFileSync(paths.keyFile)))).toBe(true);
    // Keys 0600, directories 0700 (the state directory itself is the test's).
    expect(mode(paths.caKey)).toBe(0o600);
    expect(mode(paths.keyFile)).toBe(0o600);
    for (const dir of [
      paths.caDir,
      join(state, "dev-mtls"),
      paths.workloadDir,
      join(paths.workloadDir, "..data"),
    ]) {
      expect(mode(dir)).toBe(0o700);
    }
    // The kubelet's layout: the three names are symlinks through ..data.
    expect(readlinkSync(paths.certFile)).toBe(join("..data", "tls.crt"));
    expect(readFileSync(paths.caFile, "utf8")).toBe(readFileSync(paths.caCert, "utf8"));
    // The one start line names the CA and the identity, as a warning.
    const line = logs.filter((entry) => entry.level === "warn");
    expect(line).toHaveLength(1);
    expect(line[0]!.msg).toContain(paths.caCert);
    expect(line[0]!.msg).toContain("spiffe://cluster.local/ns/default/sa/reviews");
    expect(line[0]!.msg).toContain("for development only");
  });

  it("a second start reuses the CA and the certificate", async () => {
    const first = await dev().start();
    const caPem = readFileSync(join(state, "dev-mtls", "ca", "ca.crt"), "utf8");
    const second = dev();
    const again = await second.start();
    expect(again).toMatchObject({ ca: "reused", issuedBecause: undefined, serial: first.serial });
    expect(readFileSync(second.paths.caCert, "utf8")).toBe(caPem);
    // Another identity in the same state directory is issued by the same CA.
    const other = dev({}, { namespace: "shop", serviceAccount: "frontend" });
    expect(await other.provision()).toMatchObject({ ca: "reused", issuedBecause: "missing" });
    expect(openssl("verify", "-CAfile", second.paths.caFile, other.paths.certFile).trim()).toMatch(
      /: OK$/,
    );
  });

  it("concurrent first starts end with one CA, and every certificate verifies against it", async () => {
    const identities = [0, 1, 2, 3].map(() => dev());
    const results = await Promise.all(identities.map((identity) => identity.provision()));
    expect(results.filter((r) => r.ca === "created")).toHaveLength(1);
    expect(readdirSync(join(state, "dev-mtls")).sort()).toEqual(["ca", "workloads"]);
    expect(readdirSync(join(state, "dev-mtls", "ca")).sort()).toEqual(["ca.crt", "ca.key"]);
    const caCert = identities[0]!.paths.caCert;
    expect(openssl("verify", "-CAfile", caCert, identities[0]!.paths.certFile)).toMatch(/: OK/);
    // The last swap wins: one consistent set on disk, its key matching its certificate.
    const { certFile, keyFile } = identities[0]!.paths;
    const cert = new X509Certificate(readFileSync(certFile));
    expect(cert.checkPrivateKey(createPrivateKey(readFileSync(keyFile)))).toBe(true);
  });

  it("installOnce: of writers racing to create one directory, exactly one wins, whole", async () => {
    const dir = join(state, "dev-mtls", "ca");
    const writers = ["a", "b", "c", "d", "e", "f"];
    const won = await Promise.all(
      writers.map((w) =>
        installOnce(dir, [
          { name: "ca.key", text: `key ${w}`, mode: 0o600 },
          { name: "ca.crt", text: `cert ${w}`, mode: 0o644 },
        ]),
      ),
    );
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = writers[won.indexOf(true)]!;
    expect(readFileSync(join(dir, "ca.key"), "utf8")).toBe(`key ${winner}`);
    expect(readFileSync(join(dir, "ca.crt"), "utf8")).toBe(`cert ${winner}`);
    expect(mode(join(dir, "ca.key"))).toBe(0o600);
    expect(mode(dir)).toBe(0o700);
    // The losers cleaned up after themselves.
    expect(readdirSync(join(state, "dev-mtls"))).toEqual(["ca"]);
  });

  describe("re-issuing at start", () => {
    const base = Date.now();

    it("keeps a certificate short of half its lifetime, re-issues one past it", async () => {
      const first = await dev({ clock: () => base }).provision();
      const lifetime = first.notAfter - first.notBefore;
      const justBefore = first.notBefore + lifetime / 2 - 60_000;
      expect(await dev({ clock: () => justBefore }).provision()).toMatchObject({
        issuedBecause: undefined,
        serial: first.serial,
      });
      const past = first.notBefore + lifetime / 2;
      const renewed = await dev({ clock: () => past }).provision();
      expect(renewed.issuedBecause).toMatch(/^past half its lifetime/);
      expect(renewed.serial).not.toBe(first.serial);
    });

    it("re-issues an expired certificate", async () => {
      const first = await dev({ clock: () => base }).provision();
      const later = first.notAfter + HOUR;
      const renewed = await dev({ clock: () => later }).provision();
      expect(renewed.issuedBecause).toMatch(/tls\.crt expired .* \(60 min ago\)$/);
      expect(renewed.notAfter).toBeGreaterThan(later);
    });

    it("re-issues a certificate the current CA did not sign (the CA was replaced)", async () => {
      const identity = dev();
      const first = await identity.provision();
      rmSync(identity.paths.caDir, { recursive: true });
      const renewed = await dev().provision();
      expect(renewed.ca).toBe("created");
      expect(renewed.issuedBecause).toContain("is not signed by any certificate in");
      expect(renewed.serial).not.toBe(first.serial);
      expect(openssl("verify", "-CAfile", identity.paths.caFile, identity.paths.certFile)).toMatch(
        /: OK/,
      );
    });

    it("re-issues when a file of the set is missing or the key is not the certificate's", async () => {
      const identity = dev();
      await identity.provision();
      rmSync(join(identity.paths.workloadDir, "tls.key"));
      expect((await dev().provision()).issuedBecause).toBe("missing");
      const other = dev({}, { serviceAccount: "other" });
      await other.provision();
      const foreignKey = readFileSync(other.paths.keyFile);
      const target = join(
        identity.paths.workloadDir,
        readlinkSync(join(identity.paths.workloadDir, "..data")),
        "tls.key",
      );
      writeFileSync(target, foreignKey);
      expect((await dev().provision()).issuedBecause).toContain("does not match");
    });
  });

  describe("renewal while running", () => {
    it("renews at half-life; a WorkloadIdentity watching the files picks the new one up", async () => {
      let now = Date.now();
      const identity = dev({ clock: () => now });
      const first = await identity.start();
      expect(identity.renewAt).toBe(first.notBefore + (first.notAfter - first.notBefore) / 2);
      const watcher = new WorkloadIdentity(identity.paths, { settleMs: 50, clock: () => now });
      started.push(watcher);
      await watcher.start();
      expect(watcher.certificate.serial).toBe(first.serial);

      now = identity.renewAt! - 1000;
      await identity.checkRenewal();
      expect(serialOnDisk(identity)).toBe(first.serial);

      now = identity.renewAt!;
      await identity.checkRenewal();
      const renewed = serialOnDisk(identity);
      expect(renewed).not.toBe(first.serial);
      expect(identity.renewAt).toBeGreaterThan(now);
      await vi.waitFor(() => expect(watcher.certificate.serial).toBe(renewed));
      // The replaced version directory is gone; the new one is behind ..data.
      const versions = readdirSync(identity.paths.workloadDir).filter(
        (name) => name.startsWith("..") && !name.startsWith("..data"),
      );
      expect(versions).toEqual([readlinkSync(join(identity.paths.workloadDir, "..data"))]);
    });

    it("logs a failed renewal and keeps running", async () => {
      let now = Date.now();
      const identity = dev({ clock: () => now });
      await identity.start();
      // The CA directory becomes unreadable in a way the identity cannot repair.
      rmSync(join(identity.paths.caDir, "ca.key"));
      now = identity.renewAt!;
      await identity.checkRenewal();
      const error = logs.find((entry) => entry.level === "error");
      expect(error?.msg).toMatch(
        /renewing .* failed, retrying in 60 s: the dev CA in .* is incomplete \(ca\.key is missing\)/,
      );
    });
  });

  describe("refusals", () => {
    it("refuses a CA made for another trust domain, saying what to do", async () => {
      await dev().provision();
      const error = await dev({}, { trustDomain: "example.org" })
        .provision()
        .catch((e: unknown) => e);
      expect((error as Error).message).toBe(
        `the dev CA ${join(state, "dev-mtls", "ca", "ca.crt")} is for spiffe://cluster.local, not spiffe://example.org: set tls.stateDir (or --state-dir) to another directory for this trust domain`,
      );
      expect((error as { code?: string }).code).toBe("REMORA_ERR_CA");
    });

    it("uses an empty ca directory, and refuses a half-made one", async () => {
      mkdirSync(join(state, "dev-mtls", "ca"), { recursive: true });
      expect((await dev().provision()).ca).toBe("created");
      rmSync(join(state, "dev-mtls", "ca", "ca.crt"));
      await expect(dev().provision()).rejects.toThrow(
        /is incomplete \(ca\.crt is missing\): delete .* to make a new dev CA/,
      );
    });
  });
});

describe("defaultStateDir", () => {
  const home = () => "/home/dev";

  it("prefers $REMORA_STATE_DIR, then $XDG_STATE_HOME/remora, then ~/.local/state/remora", () => {
    expect(defaultStateDir({ REMORA_STATE_DIR: "/srv/remora", XDG_STATE_HOME: "/x" }, home)).toBe(
      "/srv/remora",
    );
    expect(defaultStateDir({ XDG_STATE_HOME: "/x/state" }, home)).toBe("/x/state/remora");
    expect(defaultStateDir({}, home)).toBe("/home/dev/.local/state/remora");
  });

  it("ignores a relative $XDG_STATE_HOME (the XDG spec) and empty values", () => {
    expect(defaultStateDir({ XDG_STATE_HOME: "state", REMORA_STATE_DIR: "" }, home)).toBe(
      "/home/dev/.local/state/remora",
    );
  });
});
