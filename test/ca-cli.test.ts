/** `remora ca init` and `remora ca issue` as an operator runs them, checked with the real openssl. */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI } from "./harness.js";

const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

// Files are created with 0644/0600; the process umask can only take bits away.
const umask = process.umask();

let root: string;
let caDir: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "remora-ca-cli-"));
  caDir = join(root, "nested", "ca");
  const res = await cli(["ca", "init", "--out", caDir]);
  expect(res.stderr).toBe("");
  expect(res.code).toBe(0);
  expect(res.stdout).toContain(`wrote ${join(caDir, "ca.crt")} (O=cluster.local, CN=remora CA`);
});

describe("remora ca", () => {
  it("prints help for ca, ca init and ca issue", async () => {
    for (const [args, expected] of [
      [["ca", "--help"], "remora ca init --out DIR"],
      [["help", "ca"], "remora ca issue --ca DIR"],
      [["ca", "init", "--help"], "--trust-domain DOMAIN"],
      [["ca", "issue", "--help"], "--service-account SA"],
      [["help", "ca", "issue"], "tls.key (mode 0600)"],
      [["--help"], "remora ca init --out DIR"],
    ] as const) {
      const res = await cli([...args]);
      expect(res.code, args.join(" ")).toBe(0);
      expect(res.stdout, args.join(" ")).toContain(expected);
    }
  });

  it("init writes the CA with the key 0600, creating the directory", async () => {
    expect((await readdir(caDir)).sort()).toEqual(["ca.crt", "ca.key"]);
    expect(await mode(join(caDir, "ca.key"))).toBe(0o600);
    expect(await mode(join(caDir, "ca.crt"))).toBe(0o644 & ~umask);
    const x509 = new X509Certificate(await readFile(join(caDir, "ca.crt")));
    expect(x509.ca).toBe(true);
    expect(x509.subjectAltName).toBe("URI:spiffe://cluster.local");
  });

  it("init refuses to replace a CA key without --force, and replaces it with", async () => {
    const key = await readFile(join(caDir, "ca.key"), "utf8");
    const again = await cli(["ca", "init", "--out", caDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      `remora: ${join(caDir, "ca.key")} exists: refusing to replace a CA key (pass --force to replace it; certificates the old CA issued will stop verifying)\n`,
    );
    expect(await readFile(join(caDir, "ca.key"), "utf8")).toBe(key);

    const dir = join(root, "forced");
    expect((await cli(["ca", "init", "--out", dir, "--trust-domain", "a.example"])).code).toBe(0);
    const before = await readFile(join(dir, "ca.key"), "utf8");
    const forced = await cli(["ca", "init", "--out", dir, "--force", "--ttl", "30d"]);
    expect(forced.code).toBe(0);
    expect(await readFile(join(dir, "ca.key"), "utf8")).not.toBe(before);
    expect(await mode(join(dir, "ca.key"))).toBe(0o600);
    const x509 = new X509Certificate(await readFile(join(dir, "ca.crt")));
    expect(x509.subjectAltName).toBe("URI:spiffe://cluster.local");
    const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000;
    expect(days).toBeCloseTo(30 + 5 / 1440, 3);
    expect((await readdir(dir)).sort()).toEqual(["ca.crt", "ca.key"]);
  });

  it("issue writes a TLS Secret's files that openssl verifies, with the SPIFFE URI SAN", async () => {
    const out = join(root, "bookinfo");
    const res = await cli([
      "ca",
      "issue",
      "--ca",
      caDir,
      "--namespace",
      "default",
      "--service-account",
      "bookinfo",
      "--out",
      out,
    ]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    expect(res.stdout).toContain("issued spiffe://cluster.local/ns/default/sa/bookinfo (rsa)");
    expect((await readdir(out)).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    expect(await mode(join(out, "tls.key"))).toBe(0o600);
    expect(await mode(join(out, "tls.crt"))).toBe(0o644 & ~umask);
    expect(await mode(join(out, "ca.crt"))).toBe(0o644 & ~umask);
    expect(await readFile(join(out, "ca.crt"), "utf8")).toBe(
      await readFile(join(caDir, "ca.crt"), "utf8"),
    );

    const verify = await run("openssl", [
      "verify",
      "-x509_strict",
      "-purpose",
      "sslserver",
      "-CAfile",
      join(out, "ca.crt"),
      join(out, "tls.crt"),
    ]);
    expect(verify.stdout).toBe(`${join(out, "tls.crt")}: OK\n`);
    const san = await run("openssl", [
      "x509",
      "-in",
      join(out, "tls.crt"),
      "-noout",
      "-ext",
      "subjectAltName",
    ]);
    expect(san.stdout).toBe(
      "X509v3 Subject Alternative Name: critical\n    URI:spiffe://cluster.local/ns/default/sa/bookinfo\n",
    );
    const key = await run("openssl", ["pkey", "-in", join(out, "tls.key"), "-noout", "-text"]);
    expect(key.stdout).toContain("Private-Key: (2048 bit");
  });

  it("issue takes --dns (repeatable), --ttl, --key-type ecdsa, and replaces a lax old key file", async () => {
    const out = join(root, "reviews");
    await cli([
      "ca",
      "issue",
      "--ca",
      caDir,
      "--namespace",
      "x",
      "--service-account",
      "y",
      "--out",
      out,
    ]);
    await writeFile(join(out, "tls.key"), "old", { mode: 0o644 });
    const res = await cli([
      "ca",
      "issue",
      "--ca",
      caDir,
      "--namespace",
      "default",
      "--service-account",
      "reviews",
      "--out",
      out,
      "--dns",
      "reviews.default.svc",
      "--dns",
      "reviews",
      "--ttl",
      "90m",
      "--key-type",
      "ecdsa",
    ]);
    expect(res.code).toBe(0);
    expect(await mode(join(out, "tls.key"))).toBe(0o600);
    expect((await readdir(out)).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    const x509 = new X509Certificate(await readFile(join(out, "tls.crt")));
    expect(x509.subjectAltName).toBe(
      "URI:spiffe://cluster.local/ns/default/sa/reviews, DNS:reviews.default.svc, DNS:reviews",
    );
    expect((Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 60_000).toBe(95);
    const key = await run("openssl", ["pkey", "-in", join(out, "tls.key"), "-noout", "-text"]);
    expect(key.stdout).toContain("NIST CURVE: P-256");
    const verify = await run("openssl", [
      "verify",
      "-CAfile",
      join(out, "ca.crt"),
      join(out, "tls.crt"),
    ]);
    expect(verify.stdout).toContain(": OK");
  });

  it("a certificate from another CA fails openssl verify against this one", async () => {
    const otherCa = join(root, "other-ca");
    const out = join(root, "foreign");
    expect((await cli(["ca", "init", "--out", otherCa, "--key-type", "ecdsa"])).code).toBe(0);
    const args = ["--namespace", "a", "--service-account", "b", "--out", out];
    expect((await cli(["ca", "issue", "--ca", otherCa, ...args])).code).toBe(0);
    const verify = await run("openssl", [
      "verify",
      "-CAfile",
      join(caDir, "ca.crt"),
      join(out, "tls.crt"),
    ]).catch((error: { code: number; stderr: string; stdout: string }) => error);
    expect((verify as { code?: number }).code).toBe(2);
    expect(verify.stdout + verify.stderr).toContain("unable to get local issuer certificate");
  });

  it("a bad namespace exits 1 with one line naming the problem, writing nothing", async () => {
    const out = join(root, "never");
    const res = await cli([
      "ca",
      "issue",
      "--ca",
      caDir,
      "--namespace",
      "Bad_NS",
      "--service-account",
      "sa",
      "--out",
      out,
    ]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `remora: invalid namespace "Bad_NS": must be a DNS-1123 label: lowercase a-z, 0-9 and '-', starting and ending with a letter or digit\n`,
    );
    await expect(stat(out)).rejects.toThrow("ENOENT");
  });

  it("errors about the CA exit 1; usage errors exit 2", async () => {
    const base = ["ca", "issue", "--namespace", "a", "--service-account", "b", "--out", root];
    const missing = await cli([...base, "--ca", join(root, "nope")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `remora: ${join(root, "nope", "ca.crt")} not found: --ca names the directory written by "remora ca init"\n`,
    );
    const long = await cli([...base, "--ca", caDir, "--ttl", "11y"]);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/^remora: the certificate would outlive its CA \(.*\n$/);

    for (const [args, message] of [
      [
        ["ca", "issue", "--ca", caDir, "--namespace", "a", "--out", root],
        "ca issue needs --service-account SA",
      ],
      [[...base, "--ca", caDir, "--ttl", "1w"], '--ttl: invalid ttl "1w"'],
      [
        [...base, "--ca", caDir, "--key-type", "dsa"],
        '--key-type: expected rsa or ecdsa, got "dsa"',
      ],
      [["ca", "init"], "ca init needs --out DIR"],
      [["ca", "init", "--out", root, "--namespace", "x"], "--namespace"],
      [["ca", "renew"], 'unknown command "ca renew"'],
    ] as const) {
      const res = await cli([...args]);
      expect(res.code, args.join(" ")).toBe(2);
      expect(res.stderr, args.join(" ")).toContain(message);
    }
  });
});
