import { execSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer, type Server, type TLSSocket } from "node:tls";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Minted, mint } from "./testing.js";
import {
  type IdentityLogger,
  relative,
  spiffeIdsOf,
  TlsIdentityError,
  WorkloadIdentity,
  type WorkloadIdentityOptions,
} from "./workload-identity.js";

const HOUR = 3_600_000;
const SPIFFE = "spiffe://cluster.local/ns/shop/sa/web";

interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger(entries: LogEntry[]): IdentityLogger {
  const at =
    (level: LogEntry["level"]) =>
    (obj: Record<string, unknown>, msg: string): void =>
      void entries.push({ level, obj, msg });
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  } as unknown as IdentityLogger;
}

describe("WorkloadIdentity", () => {
  let dir: string;
  let logs: LogEntry[];
  let identity: WorkloadIdentity | undefined;
  let ca: Minted;
  const files = () => ({
    certFile: join(dir, "tls.crt"),
    keyFile: join(dir, "tls.key"),
    caFile: join(dir, "ca.crt"),
  });
  const leaf = (options: Parameters<typeof mint>[0] = {}) =>
    mint({ issuer: ca, uris: [SPIFFE], ...options });
  const writeSet = (at: string, cert: Minted, caPem = ca.certPem) => {
    writeFileSync(join(at, "tls.crt"), cert.certPem);
    writeFileSync(join(at, "tls.key"), cert.keyPem);
    writeFileSync(join(at, "ca.crt"), caPem);
  };
  const start = async (options: WorkloadIdentityOptions = {}) => {
    identity = new WorkloadIdentity(files(), {
      logger: recordingLogger(logs),
      settleMs: 50,
      ...options,
    });
    await identity.start();
    return identity;
  };
  const refusal = async (options: WorkloadIdentityOptions = {}): Promise<TlsIdentityError> => {
    const error = await start(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TlsIdentityError);
    expect((error as TlsIdentityError).code).toBe("REMORA_ERR_TLS_IDENTITY");
    return error as TlsIdentityError;
  };
  const errors = () => logs.filter((entry) => entry.level === "error");

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "remora-identity-"));
    logs = [];
    // Valid past the injected clocks below (2030): an expired bundle is refused.
    ca = mint({ commonName: "mesh CA", notAfter: Date.UTC(2040, 0, 1) });
  });

  afterEach(() => {
    identity?.close();
    identity = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  describe("loading", () => {
    it("exposes serial, validity and SPIFFE ID of a good set", async () => {
      const notAfter = Date.UTC(2030, 0, 1);
      const cert = leaf({ notBefore: notAfter - 24 * HOUR, notAfter });
      writeSet(dir, cert);
      const now = notAfter - 20 * HOUR;
      const id = await start({ clock: () => now });
      expect(id.certificate.serial).toBe(cert.serial);
      expect(id.certificate.notAfter).toBe(notAfter);
      expect(id.certificate.spiffeIds).toEqual([SPIFFE]);
      expect(id.spiffeId).toBe(SPIFFE);
      expect(id.expirySeconds()).toBe(20 * 3600);
      expect(logs.find((e) => e.msg === "tls identity loaded")?.obj.serial).toBe(cert.serial);
    });

    it("loads a set made by openssl (req -x509 CA, x509 -req leaf with a SPIFFE URI SAN)", async () => {
      const run = (args: string) => execSync(`openssl ${args}`, { cwd: dir, stdio: "pipe" });
      run(
        'req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj "/O=cluster.local"',
      );
      run('req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj "/O=shop"');
      writeFileSync(join(dir, "ext.cnf"), `subjectAltName=URI:${SPIFFE}\n`);
      run(
        "x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out tls.crt",
      );
      const serial = run("x509 -in tls.crt -noout -serial")
        .toString()
        .trim()
        .replace("serial=", "");
      const id = await start();
      expect(id.certificate.serial.replace(/^0+/, "")).toBe(
        serial.replace(/^0+/, "").toUpperCase(),
      );
      expect(id.spiffeId).toBe(SPIFFE);
      expect(id.expirySeconds()).toBeGreaterThan(86_000);
    });

    it("accepts intermediates sent after the leaf in tls.crt", async () => {
      const intermediate = mint({ issuer: ca, ca: true, commonName: "intermediate" });
      const cert = mint({ issuer: intermediate, uris: [SPIFFE] });
      writeFileSync(join(dir, "tls.crt"), cert.certPem + intermediate.certPem);
      writeFileSync(join(dir, "tls.key"), cert.keyPem);
      writeFileSync(join(dir, "ca.crt"), ca.certPem);
      const id = await start();
      expect(id.certificate.serial).toBe(cert.serial);
    });

    it("refuses an expired certificate, saying when", async () => {
      const notAfter = Date.UTC(2026, 11, 1, 10);
      writeSet(dir, leaf({ notBefore: notAfter - 24 * HOUR, notAfter }));
      const error = await refusal({ clock: () => notAfter + 3 * HOUR });
      expect(error.message).toBe(`${files().certFile} expired 2026-12-01T10:00:00Z (3 h ago)`);
      expect(error.file).toBe(files().certFile);
    });

    it("refuses a certificate that is not valid yet, suspecting the clock", async () => {
      const notBefore = Date.UTC(2027, 0, 2);
      writeSet(dir, leaf({ notBefore, notAfter: notBefore + 24 * HOUR }));
      const error = await refusal({ clock: () => notBefore - 90 * 60_000 });
      expect(error.message).toBe(
        `${files().certFile} is not valid yet: valid from 2027-01-02T00:00:00Z (in 90 min); is this host's clock right?`,
      );
    });

    it("refuses a key that is not the certificate's", async () => {
      const cert = leaf();
      writeSet(dir, cert);
      writeFileSync(files().keyFile, leaf().keyPem);
      const error = await refusal();
      expect(error.message).toBe(`${files().keyFile} does not match ${files().certFile}`);
      expect(error.file).toBe(files().keyFile);
    });

    it("refuses a certificate from a foreign CA, naming both issuers", async () => {
      const foreign = mint({ commonName: "foreign CA" });
      writeSet(dir, mint({ issuer: foreign, uris: [SPIFFE] }));
      const error = await refusal();
      expect(error.message).toBe(
        `${files().certFile} is not signed by any certificate in ${files().caFile} (issuer: CN=foreign CA; ${files().caFile} holds: CN=mesh CA)`,
      );
    });

    it("refuses a forged certificate that copies the CA's name but not its signature", async () => {
      const impostor = mint({ commonName: "mesh CA" });
      writeSet(dir, mint({ issuer: impostor, uris: [SPIFFE] }));
      expect((await refusal()).message).toContain("is not signed by any certificate in");
    });

    it("refuses garbage in each file, naming it", async () => {
      const cert = leaf();
      writeSet(dir, cert);
      writeFileSync(files().certFile, "hello");
      expect((await refusal()).message).toBe(
        `${files().certFile} holds no PEM certificate (no "BEGIN CERTIFICATE")`,
      );
      writeFileSync(
        files().certFile,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      );
      expect((await refusal()).message).toMatch(
        new RegExp(`^${files().certFile} does not parse as X\\.509 \\(`),
      );
      writeFileSync(files().certFile, cert.certPem);
      writeFileSync(
        files().keyFile,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      );
      expect((await refusal()).message).toMatch(
        new RegExp(`^${files().keyFile} is not a readable PEM private key \\(`),
      );
      writeFileSync(files().keyFile, cert.keyPem);
      writeFileSync(files().caFile, "");
      expect((await refusal()).message).toBe(
        `${files().caFile} holds no PEM certificate (no "BEGIN CERTIFICATE")`,
      );
      rmSync(files().caFile);
      expect((await refusal()).message).toBe(`${files().caFile} does not exist`);
    });
  });

  describe("rotation", () => {
    it("uses a set rewritten in place, and reports old and new serials", async () => {
      const first = leaf();
      writeSet(dir, first);
      const changes: string[][] = [];
      const id = await start({ onChange: (now, was) => changes.push([was.serial, now.serial]) });
      const second = leaf();
      writeSet(dir, second);
      await vi.waitFor(() => expect(id.certificate.serial).toBe(second.serial));
      expect(changes).toEqual([[first.serial, second.serial]]);
      const rotated = logs.find((e) => e.msg === "tls identity rotated");
      expect(rotated?.obj).toMatchObject({ oldSerial: first.serial, newSerial: second.serial });
      expect(errors()).toEqual([]);
    });

    it("takes a trust bundle changed on its own (a second root added for a CA rotation)", async () => {
      const cert = leaf();
      writeSet(dir, cert);
      const id = await start();
      const before = id.secureContext;
      writeFileSync(files().caFile, ca.certPem + mint({ commonName: "next CA" }).certPem);
      await vi.waitFor(() => expect(id.secureContext).not.toBe(before));
      expect(id.certificate.serial).toBe(cert.serial);
      expect(errors()).toEqual([]);
    });

    it("follows the kubelet's ..data symlink swap", async () => {
      // A mounted Secret: tls.crt -> ..data/tls.crt, ..data -> ..2026_01_01_00_00_00.1
      const version = (name: string, cert: Minted) => {
        mkdirSync(join(dir, name));
        writeSet(join(dir, name), cert);
      };
      const first = leaf();
      version("..2026_01", first);
      symlinkSync("..2026_01", join(dir, "..data"));
      for (const name of ["tls.crt", "tls.key", "ca.crt"]) {
        symlinkSync(join("..data", name), join(dir, name));
      }
      const id = await start();
      expect(id.certificate.serial).toBe(first.serial);
      const second = leaf();
      version("..2026_02", second);
      symlinkSync("..2026_02", join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
      rmSync(join(dir, "..2026_01"), { recursive: true });
      await vi.waitFor(() => expect(id.certificate.serial).toBe(second.serial));
      expect(errors()).toEqual([]);
    });

    it("refuses a bad rotation with a logged error and keeps the last good set", async () => {
      const good = leaf();
      writeSet(dir, good);
      const id = await start();
      const context = id.secureContext;
      writeSet(dir, leaf({ notBefore: Date.now() - 48 * HOUR, notAfter: Date.now() - HOUR }));
      await vi.waitFor(() => expect(errors()).toHaveLength(1));
      expect(errors()[0]!.msg).toMatch(
        new RegExp(
          `^tls identity rotation refused: ${files().certFile} expired .* \\(60 min ago\\); keeping certificate ${good.serial}$`,
        ),
      );
      expect(errors()[0]!.obj).toMatchObject({
        code: "REMORA_ERR_TLS_IDENTITY",
        keptSerial: good.serial,
      });
      // The refusal came after one retry, not on the first read.
      expect(logs.map((e) => e.level)).toContain("debug");
      expect(id.certificate.serial).toBe(good.serial);
      expect(id.secureContext).toBe(context);
      // And the next good set is taken.
      const next = leaf();
      writeSet(dir, next);
      await vi.waitFor(() => expect(id.certificate.serial).toBe(next.serial));
    });

    it("does not refuse a certificate whose key follows it a moment later", async () => {
      writeSet(dir, leaf());
      // A settle delay long enough that the key's write lands before the retry.
      const id = await start({ settleMs: 400 });
      const next = leaf();
      writeFileSync(files().certFile, next.certPem);
      await vi.waitFor(() => expect(logs.some((e) => e.level === "debug")).toBe(true));
      writeFileSync(files().keyFile, next.keyPem);
      await vi.waitFor(() => expect(id.certificate.serial).toBe(next.serial));
      expect(errors()).toEqual([]);
    });

    it("reload() reports a refusal and keeps the old set", async () => {
      const good = leaf();
      writeSet(dir, good);
      const id = await start();
      id.close(); // no watch: reload() alone decides
      writeFileSync(files().keyFile, leaf().keyPem);
      expect(await id.reload()).toBe(false);
      expect(errors()[0]!.obj.reason).toBe(`${files().keyFile} does not match ${files().certFile}`);
      expect(id.certificate.serial).toBe(good.serial);
    });
  });

  describe("a node:tls server using secureContext", () => {
    let server: Server | undefined;
    const sockets: TLSSocket[] = [];

    afterEach(async () => {
      for (const socket of sockets) socket.destroy();
      sockets.length = 0;
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
      server = undefined;
    });

    const open = (port: number) =>
      new Promise<TLSSocket>((resolve, reject) => {
        const socket = connect({
          port,
          host: "127.0.0.1",
          servername: "web.shop",
          ca: ca.certPem,
          // The certificate names a SPIFFE ID, not a host: the chain is still verified.
          checkServerIdentity: () => undefined,
        });
        socket.once("secureConnect", () => resolve(socket));
        socket.once("error", reject);
        sockets.push(socket);
      });
    const echo = (socket: TLSSocket, text: string) =>
      new Promise<string>((resolve) => {
        socket.once("data", (data) => resolve(data.toString()));
        socket.write(text);
      });

    it("serves a rotated certificate to new connections while open ones keep working", async () => {
      const first = leaf();
      writeSet(dir, first);
      const id = await start();
      server = createServer(
        {
          SNICallback: (_name, done) => done(null, id.secureContext),
        },
        (socket) => socket.pipe(socket),
      );
      await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as { port: number }).port;
      const old = await open(port);
      expect(old.authorized).toBe(true);
      expect(old.getPeerCertificate().serialNumber).toBe(first.serial);

      const second = leaf();
      writeSet(dir, second);
      await vi.waitFor(() => expect(id.certificate.serial).toBe(second.serial));

      const fresh = await open(port);
      expect(fresh.getPeerCertificate().serialNumber).toBe(second.serial);
      expect(await echo(old, "still here")).toBe("still here");
      expect(old.getPeerCertificate().serialNumber).toBe(first.serial);
      expect(await echo(fresh, "new")).toBe("new");
    });
  });

  describe("expiry", () => {
    const notBefore = Date.UTC(2030, 0, 1);
    const notAfter = notBefore + 24 * HOUR;
    const warnings = () => logs.filter((e) => e.level === "warn");

    it("counts expirySeconds down with the clock, below zero once expired", async () => {
      writeSet(dir, leaf({ notBefore, notAfter }));
      let now = notBefore;
      const id = await start({ clock: () => now });
      expect(id.expirySeconds()).toBe(86_400);
      now = notAfter + 5000;
      expect(id.expirySeconds()).toBe(-5);
    });

    it("warns once when a quarter of a 24 h lifetime (6 h) remains", async () => {
      writeSet(dir, leaf({ notBefore, notAfter }));
      let now = notAfter - 7 * HOUR;
      const id = await start({ clock: () => now });
      expect(warnings()).toEqual([]);
      now = notAfter - 6 * HOUR - 1000;
      id.checkExpiry();
      expect(warnings()).toEqual([]);
      now = notAfter - 6 * HOUR;
      id.checkExpiry();
      id.checkExpiry();
      expect(warnings().map((e) => e.msg)).toEqual([
        "workload certificate expires 2030-01-02T00:00:00Z (in 6 h) and has not been rotated",
      ]);
      expect(warnings()[0]!.obj).toMatchObject({ expirySeconds: 6 * 3600 });
    });

    it("warns at load when already inside the window, and again after a renewal still inside it", async () => {
      writeSet(dir, leaf({ notBefore, notAfter }));
      const now = notAfter - HOUR;
      const id = await start({ clock: () => now, warnBeforeMs: 2 * HOUR });
      expect(warnings()).toHaveLength(1);
      const renewed = leaf({ notBefore, notAfter: notAfter + 30 * 60_000 });
      writeSet(dir, renewed);
      await vi.waitFor(() => expect(id.certificate.serial).toBe(renewed.serial));
      expect(warnings().map((e) => e.msg)).toEqual([
        "workload certificate expires 2030-01-02T00:00:00Z (in 60 min) and has not been rotated",
        "workload certificate expires 2030-01-02T00:30:00Z (in 90 min) and has not been rotated",
      ]);
      const fresh = leaf({ notBefore, notAfter: notAfter + 24 * HOUR });
      writeSet(dir, fresh);
      await vi.waitFor(() => expect(id.certificate.serial).toBe(fresh.serial));
      expect(warnings()).toHaveLength(2);
    });

    it("caps the default window at 7 days for long-lived certificates", async () => {
      const longAfter = notBefore + 365 * 24 * HOUR;
      writeSet(dir, leaf({ notBefore, notAfter: longAfter }));
      let now = longAfter - 8 * 24 * HOUR;
      const id = await start({ clock: () => now });
      expect(warnings()).toEqual([]);
      now = longAfter - 7 * 24 * HOUR;
      id.checkExpiry();
      expect(warnings()).toHaveLength(1);
    });
  });

  describe("trust bundle expiry (kind=ca)", () => {
    const DAY = 24 * HOUR;
    const caFrom = Date.UTC(2030, 0, 1);
    const caUntil = caFrom + 3650 * DAY;
    const warnings = () => logs.filter((e) => e.level === "warn");
    /** A leaf valid around `at`, issued by the test's CA. */
    const leafAt = (at: number) => leaf({ notBefore: at - HOUR, notAfter: at + 10 * DAY });

    beforeEach(() => {
      ca = mint({ commonName: "mesh CA", notBefore: caFrom, notAfter: caUntil });
    });

    it("reports the bundle's first certificate to expire", async () => {
      const next = mint({
        commonName: "next CA",
        notBefore: caFrom,
        notAfter: caUntil + 365 * DAY,
      });
      const now = caFrom + DAY;
      writeSet(dir, leafAt(now), next.certPem + ca.certPem);
      const id = await start({ clock: () => now });
      expect(id.trustBundle).toMatchObject({ subject: "CN=mesh CA", notAfter: caUntil });
      expect(id.caExpirySeconds()).toBe((caUntil - now) / 1000);
    });

    it("warns once with 7 days left of a 10-year CA (a quarter of the lifetime, capped)", async () => {
      let now = caUntil - 7 * DAY - 1000;
      writeSet(dir, leafAt(now));
      const id = await start({ clock: () => now });
      expect(warnings()).toEqual([]);
      now = caUntil - 7 * DAY;
      id.checkExpiry();
      id.checkExpiry();
      expect(warnings().map((e) => e.msg)).toEqual([
        `CA certificate CN=mesh CA in ${files().caFile} expires 2039-12-30T00:00:00Z (in 7 d) and has not been replaced`,
      ]);
      expect(warnings()[0]!.obj).toMatchObject({ kind: "ca", file: files().caFile });
    });

    it("refuses a bundle whose every certificate has expired, at start and on rotation", async () => {
      const after = caUntil + HOUR;
      writeSet(dir, leaf({ notBefore: after - HOUR, notAfter: after + DAY }));
      const error = await refusal({ clock: () => after });
      expect(error.file).toBe(files().caFile);
      expect(error.message).toBe(
        `${files().caFile} expired (the last 2039-12-30T00:00:00Z, 60 min ago): no peer certificate can verify against it`,
      );
      identity = undefined;

      // Running with a good set, a rotation to an expired bundle is refused; the old set stays.
      let now = caFrom + DAY;
      const good = leafAt(now);
      writeSet(dir, good);
      const id = await start({ clock: () => now });
      const old = mint({ commonName: "old CA", notBefore: caFrom - 2 * DAY, notAfter: caFrom });
      writeFileSync(files().caFile, old.certPem + old.certPem);
      expect(await id.reload()).toBe(false);
      expect(errors().at(-1)!.obj.reason).toMatch(
        new RegExp(
          `^every certificate in ${files().caFile} expired \\(the last 2030-01-01T00:00:00Z`,
        ),
      );
      expect(id.certificate.serial).toBe(good.serial);
      now += HOUR;
      expect(id.caExpirySeconds()).toBe((caUntil - now) / 1000);
    });

    it("keeps a bundle that still holds a valid CA, and warns about the expired one in it", async () => {
      const now = caFrom + DAY;
      const old = mint({ commonName: "old CA", notBefore: caFrom - 2 * DAY, notAfter: caFrom });
      writeSet(dir, leafAt(now), old.certPem + ca.certPem);
      const id = await start({ clock: () => now });
      expect(id.caExpirySeconds()).toBe(-DAY / 1000);
      expect(warnings().map((e) => e.msg)).toEqual([
        `CA certificate CN=old CA in ${files().caFile} expired 2030-01-01T00:00:00Z (24 h ago); certificates it signed no longer verify`,
      ]);
    });
  });
});

describe("spiffeIdsOf", () => {
  it("finds spiffe URIs among other SANs, including node's quoted values", () => {
    expect(spiffeIdsOf(undefined)).toEqual([]);
    expect(
      spiffeIdsOf(
        'DNS:web.shop.svc, URI:https://example.com, URI:spiffe://td/ns/a/sa/b, URI:"spiffe://td/ns/a,b/sa/c"',
      ),
    ).toEqual(["spiffe://td/ns/a/sa/b", "spiffe://td/ns/a,b/sa/c"]);
  });
});

describe("relative", () => {
  it("reads like a person would say it", () => {
    expect([45_000, 90 * 60_000, 3 * HOUR, 72 * HOUR].map(relative)).toEqual([
      "45 s",
      "90 min",
      "3 h",
      "3 d",
    ]);
  });
});
