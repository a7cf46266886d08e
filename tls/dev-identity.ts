/**
 * Dev mode (`tls: { dev: true }`, `remora run --dev-mtls`): a local CA under a state directory
 * and a workload certificate it issues, made on first start and renewed while running, so two
 * remoras on one machine talk mTLS with no setup. Not for production: the CA key sits on disk
 * beside the proxy, and anyone who can read it can mint any mesh identity.
 *
 * Imports tls/ca.ts and so node-forge: the runtime loads this module with a dynamic import, only
 * in dev mode (test/import-graph.test.ts keeps it off the run path's static graph).
 *
 * Several remoras may share one state directory and start at the same moment, so every write is
 * all-or-nothing and the last writer leaves a consistent set:
 * - the CA is written into a fresh temporary directory and renamed to `dev-mtls/ca`; rename(2)
 *   refuses to replace a non-empty directory, so exactly one CA wins and the losers read it;
 * - a workload certificate is written the way the kubelet updates a mounted Secret: the three
 *   files go into a new `..<time>.<random>` directory, `..data` is swapped to it with one rename,
 *   and `tls.crt`, `tls.key`, `ca.crt` are symlinks through `..data`. A reader (WorkloadIdentity's
 *   watcher in this or another remora) sees the old set or the new one, never a mix.
 */
import { X509Certificate } from "node:crypto";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CaError, type CertificateAndKey, createCa, issueWorkloadCertificate } from "./ca.js";
import { type DevIdentityPaths, type DevIdentitySettings, devIdentityPaths } from "./dev-state.js";
import { spiffeId, uriSansOf } from "./identity.js";
import {
  type IdentityLogger,
  isoDate,
  relative,
  TlsIdentityError,
  validate,
} from "./workload-identity.js";

/** How long the dev CA lives: `remora ca init`'s default. */
export const DEV_CA_TTL_MS = 10 * 365 * 86_400_000;
/** How long a dev workload certificate lives: Istio's 24 h. */
export const DEV_WORKLOAD_TTL_MS = 24 * 3_600_000;
/** After a failed renewal, try again this much later. */
const RETRY_MS = 60_000;
/** Node clamps longer timer delays to 1 ms; longer waits re-arm. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
/** A version directory not in use and older than this is left over from a race: removed. */
const STALE_VERSION_MS = 60_000;
const FILES = ["tls.crt", "tls.key", "ca.crt"] as const;

export interface DevIdentityOptions {
  /** Wall-clock epoch ms, default `Date.now` (certificate validity is calendar time). */
  readonly clock?: () => number;
  readonly logger?: IdentityLogger;
  /** Default 24 h. */
  readonly workloadTtlMs?: number;
  /** Default 10 years. */
  readonly caTtlMs?: number;
}

/** What `provision()` found and did, for logs and tests. */
export interface Provisioned {
  readonly ca: "created" | "reused";
  /** Why the workload certificate was (re-)issued; undefined when the one on disk was kept. */
  readonly issuedBecause: string | undefined;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/**
 * One workload's dev identity: `start()` makes sure the CA and a current certificate exist (the
 * runtime then loads `paths.certFile`, `keyFile`, `caFile` into a WorkloadIdentity, whose file
 * watch follows every renewal), and arms a timer that renews the certificate at half its
 * lifetime, as Istio's agent does.
 */
export class DevIdentity {
  readonly settings: DevIdentitySettings;
  readonly paths: DevIdentityPaths;
  /** `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
  readonly spiffeId: string;
  readonly #clock: () => number;
  readonly #logger: IdentityLogger | undefined;
  readonly #workloadTtlMs: number;
  readonly #caTtlMs: number;
  #renewAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(settings: DevIdentitySettings, options: DevIdentityOptions = {}) {
    this.settings = settings;
    this.spiffeId = spiffeId(settings.trustDomain, settings.namespace, settings.serviceAccount);
    this.paths = devIdentityPaths(settings.stateDir, settings.namespace, settings.serviceAccount);
    this.#clock = options.clock ?? Date.now;
    this.#logger = options.logger;
    this.#workloadTtlMs = options.workloadTtlMs ?? DEV_WORKLOAD_TTL_MS;
    this.#caTtlMs = options.caTtlMs ?? DEV_CA_TTL_MS;
  }

  /** Provision, log the one start line, and arm the renewal timer. */
  async start(): Promise<Provisioned> {
    const done = await this.provision();
    this.#logger?.warn(
      {
        ca: this.paths.caCert,
        caCreated: done.ca === "created",
        spiffeId: this.spiffeId,
        certFile: this.paths.certFile,
        issued: done.issuedBecause ?? false,
        notAfter: isoDate(done.notAfter),
      },
      `dev mTLS: identity ${this.spiffeId} from the local CA ${this.paths.caCert}; for development only (anyone who can read ${this.paths.caKey} can mint mesh identities)`,
    );
    this.#arm();
    return done;
  }

  /** When the running certificate is due for renewal (epoch ms); undefined before start. */
  get renewAt(): number | undefined {
    return this.#renewAt;
  }

  /**
   * Make sure the CA exists and the workload certificate on disk is current: present, readable,
   * its key's, signed by this CA, for this identity, and short of half its lifetime; else issue
   * a new one. Another remora sharing the state directory may have renewed it already.
   */
  async provision(): Promise<Provisioned> {
    const now = this.#clock();
    const { ca, created } = await this.#ensureCa(now);
    let reason = await this.#staleness(ca, now);
    if (reason === undefined) {
      const current = await this.#readCertificate();
      if (current !== undefined) return this.#provisioned(created, undefined, current);
      reason = "missing";
    }
    const issued = issueWorkloadCertificate({
      ca,
      namespace: this.settings.namespace,
      serviceAccount: this.settings.serviceAccount,
      trustDomain: this.settings.trustDomain,
      ttlMs: this.#workloadTtlMs,
      now: () => now,
    });
    await this.#writeWorkload(issued.certPem, issued.keyPem, issued.caPem);
    const certificate = new X509Certificate(issued.certPem);
    this.#logger?.info(
      { spiffeId: this.spiffeId, serial: certificate.serialNumber, reason },
      `dev mTLS: issued a workload certificate (${reason})`,
    );
    return this.#provisioned(created, reason, certificate);
  }

  /** The renewal timer's body; public so a caller with an injected clock can drive it. */
  async checkRenewal(): Promise<void> {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      await this.provision();
    } catch (error) {
      if (this.#closed) return;
      this.#logger?.error(
        { err: error, certFile: this.paths.certFile },
        `dev mTLS: renewing ${this.spiffeId} failed, retrying in ${relative(RETRY_MS)}: ${(error as Error).message}`,
      );
      this.#schedule(this.#clock() + RETRY_MS);
      return;
    }
    this.#arm();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #provisioned(
    created: boolean,
    issuedBecause: string | undefined,
    certificate: X509Certificate,
  ): Provisioned {
    const notBefore = certificate.validFromDate.getTime();
    const notAfter = certificate.validToDate.getTime();
    this.#renewAt = halfLife(notBefore, notAfter);
    return {
      ca: created ? "created" : "reused",
      issuedBecause,
      serial: certificate.serialNumber.toUpperCase(),
      notBefore,
      notAfter,
    };
  }

  #arm(): void {
    if (this.#renewAt !== undefined) this.#schedule(this.#renewAt);
  }

  #schedule(at: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    const delay = Math.min(Math.max(at - this.#clock(), 0), MAX_TIMER_DELAY_MS);
    this.#timer = setTimeout(() => {
      // A clamped long wait re-arms rather than renewing early.
      if (this.#clock() < at) this.#schedule(at);
      else void this.checkRenewal();
    }, delay);
    this.#timer.unref();
  }

  /** The CA, created if there is none; one CA wins however many remoras start at once. */
  async #ensureCa(now: number): Promise<{ ca: CertificateAndKey; created: boolean }> {
    const existing = await this.#readCa(now);
    if (existing !== undefined) return { ca: existing, created: false };
    const ca = createCa({
      trustDomain: this.settings.trustDomain,
      ttlMs: this.#caTtlMs,
      now: () => now,
    });
    const created = await installOnce(this.paths.caDir, [
      { name: "ca.key", text: ca.keyPem, mode: 0o600 },
      { name: "ca.crt", text: ca.certPem, mode: 0o644 },
    ]);
    if (created) return { ca, created: true };
    // Another remora's CA got there first.
    const winner = await this.#readCa(now);
    if (winner === undefined) throw new CaError(`${this.paths.caDir} vanished while being created`);
    return { ca: winner, created: false };
  }

  /** The CA on disk, checked; undefined when there is none. */
  async #readCa(now: number): Promise<CertificateAndKey | undefined> {
    const { caDir, caCert, caKey } = this.paths;
    const certPem = await readOptional(caCert);
    const keyPem = await readOptional(caKey);
    if (certPem === undefined && keyPem === undefined) {
      // An empty directory is replaced by rename(2); anything else in it is someone's.
      return undefined;
    }
    const fix = `delete ${caDir} to make a new dev CA (certificates it issued stop verifying)`;
    if (certPem === undefined || keyPem === undefined) {
      throw new CaError(
        `the dev CA in ${caDir} is incomplete (${certPem === undefined ? "ca.crt" : "ca.key"} is missing): ${fix}`,
      );
    }
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(certPem);
    } catch (error) {
      throw new CaError(`${caCert} is not a PEM certificate (${(error as Error).message}): ${fix}`);
    }
    if (certificate.validToDate.getTime() <= now) {
      throw new CaError(
        `the dev CA ${caCert} expired ${isoDate(certificate.validToDate.getTime())}: ${fix}`,
      );
    }
    const own = `spiffe://${this.settings.trustDomain}`;
    const domains = uriSansOf(certificate.subjectAltName).filter((uri) =>
      uri.startsWith("spiffe://"),
    );
    if (!domains.includes(own)) {
      throw new CaError(
        `the dev CA ${caCert} is for ${domains.join(", ") || "another trust domain"}, not ${own}: set tls.stateDir (or --state-dir) to another directory for this trust domain`,
      );
    }
    return { certPem, keyPem };
  }

  /** Why the workload certificate on disk must be re-issued, or undefined if it may stay. */
  async #staleness(ca: CertificateAndKey, now: number): Promise<string | undefined> {
    const { certFile, keyFile, caFile } = this.paths;
    const [certText, keyText, bundleText] = await Promise.all(
      [certFile, keyFile, caFile].map(readOptional),
    );
    if (certText === undefined || keyText === undefined || bundleText === undefined) {
      return "missing";
    }
    let facts: ReturnType<typeof validate>;
    try {
      // Chained to the current CA, not to the ca.crt beside it: that may be an old CA's copy.
      facts = validate(this.paths, { certText, keyText, caText: ca.certPem }, now);
    } catch (error) {
      if (error instanceof TlsIdentityError) return error.message;
      throw error;
    }
    if (bundleText !== ca.certPem) return `${caFile} is not the current CA certificate`;
    if (facts.spiffeIds.length !== 1 || facts.spiffeIds[0] !== this.spiffeId) {
      return `${certFile} is for ${facts.spiffeIds.join(", ") || "no SPIFFE ID"}, not ${this.spiffeId}`;
    }
    if (now >= halfLife(facts.notBefore, facts.notAfter)) {
      return `past half its lifetime (expires ${isoDate(facts.notAfter)})`;
    }
    return undefined;
  }

  async #readCertificate(): Promise<X509Certificate | undefined> {
    const text = await readOptional(this.paths.certFile);
    return text === undefined ? undefined : new X509Certificate(text);
  }

  /**
   * The kubelet's atomic Secret update: a new version directory, `..data` renamed to point at
   * it, the three names linked through `..data` (made once), the replaced version removed.
   */
  async #writeWorkload(certPem: string, keyPem: string, caPem: string): Promise<void> {
    const dir = this.paths.workloadDir;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date(this.#clock()).toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
    // mkdtemp: 0700, and a name no concurrent writer can take.
    const version = await mkdtemp(join(dir, `..${stamp}.`));
    await writeFile(join(version, "tls.key"), keyPem, { mode: 0o600, flag: "wx" });
    await writeFile(join(version, "tls.crt"), certPem, { mode: 0o644, flag: "wx" });
    await writeFile(join(version, "ca.crt"), caPem, { mode: 0o644, flag: "wx" });
    const data = join(dir, "..data");
    const previous = await readlink(data).catch(() => undefined);
    await replaceSymlink(basename(version), data);
    for (const name of FILES) {
      const path = join(dir, name);
      const target = join("..data", name);
      const existing = await readlink(path).catch(() => undefined);
      if (existing !== target) await replaceSymlink(target, path);
    }
    // Each writer points ..data at its own new directory, so the one it replaced is unused.
    if (previous?.startsWith("..")) {
      await rm(join(dir, previous), { recursive: true, force: true });
    }
    await removeLeftovers(dir, basename(version));
  }
}

/**
 * Version directories a concurrent writer left behind when its swap lost the race. One younger
 * than STALE_VERSION_MS may be another remora's, about to be swapped in, so it waits for a later
 * renewal. Ages are file times, so this uses the real clock, not the injected one.
 */
async function removeLeftovers(dir: string, own: string): Promise<void> {
  const current = await readlink(join(dir, "..data")).catch(() => undefined);
  for (const name of await readdir(dir)) {
    // `..data` and writers' `..data_tmp-*` symlinks are not versions.
    if (!name.startsWith("..") || name.startsWith("..data") || name === own || name === current) {
      continue;
    }
    const path = join(dir, name);
    const stat = await lstat(path).catch(() => undefined);
    if (stat?.isDirectory() && Date.now() - stat.mtimeMs >= STALE_VERSION_MS) {
      await rm(path, { recursive: true, force: true });
    }
  }
}

/**
 * Creates `dir` holding `files`, all at once or not at all: they are written into a new sibling
 * directory (mkdtemp: mode 0700), which is then renamed to `dir`. rename(2) replaces an empty
 * directory but refuses a non-empty one (ENOTEMPTY, or EEXIST), so when several writers race,
 * exactly one wins. Resolves true if this call created `dir`, false if it already held files.
 */
export async function installOnce(
  dir: string,
  files: readonly { name: string; text: string; mode: number }[],
): Promise<boolean> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  const temp = await mkdtemp(join(parent, `.${basename(dir)}-`));
  try {
    for (const file of files) {
      await writeFile(join(temp, file.name), file.text, { mode: file.mode, flag: "wx" });
    }
    await rename(temp, dir);
    return true;
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY" || code === "EEXIST") return false;
    throw error;
  }
}

function halfLife(notBefore: number, notAfter: number): number {
  return notBefore + (notAfter - notBefore) / 2;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Point `path` at `target` with one rename, replacing whatever was there. */
async function replaceSymlink(target: string, path: string): Promise<void> {
  const temp = `${path}_tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await symlink(target, temp);
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
