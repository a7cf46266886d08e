import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createSecureContext, type SecureContext } from "node:tls";
import { WatchedFile } from "../proxy/config/watched-file.js";
import type { Logger } from "../proxy/log.js";

/**
 * This workload's identity: the certificate, key and trust bundle of a Kubernetes TLS Secret
 * (`tls.crt`, `tls.key`, `ca.crt`) mounted into the pod. Imports node:crypto and node:tls only
 * (no node-forge): it lives in the proxy's long-lived thread.
 */
export interface WorkloadIdentityFiles {
  /** PEM: the workload certificate first, then any intermediates up to the trust bundle. */
  readonly certFile: string;
  /** PEM private key (PKCS#8, PKCS#1 or SEC1), unencrypted. */
  readonly keyFile: string;
  /** PEM trust bundle: one or more CA certificates. */
  readonly caFile: string;
}

/** The facts other parts (metrics, admin API, logs, the XFCC `By=`) read about the certificate. */
export interface CertificateFacts {
  /** Hex, upper case, as node:tls reports a peer's `serialNumber`. */
  readonly serial: string;
  /** Epoch ms. */
  readonly notBefore: number;
  /** Epoch ms. */
  readonly notAfter: number;
  /** The `spiffe://` URI SANs, in certificate order (a mesh certificate carries exactly one). */
  readonly spiffeIds: readonly string[];
  readonly subject: string;
  readonly issuer: string;
  /** SHA-256 of the DER, colon-separated hex (node's `fingerprint256`). */
  readonly fingerprint256: string;
}

/** The trust bundle's certificate that expires first: the `kind="ca"` expiry gauge and warning. */
export interface TrustBundleFacts {
  readonly subject: string;
  /** Hex, upper case. */
  readonly serial: string;
  /** Epoch ms. */
  readonly notBefore: number;
  /** Epoch ms: the soonest `notAfter` among the bundle's certificates. */
  readonly notAfter: number;
}

/** What validate() learns: the certificate's facts and the bundle's soonest expiry. */
export interface ValidatedFacts extends CertificateFacts {
  readonly trustBundle: TrustBundleFacts;
}

/** pino's shape; only these levels are used. */
export type IdentityLogger = Pick<Logger, "debug" | "info" | "warn" | "error">;

export interface WorkloadIdentityOptions {
  /**
   * Wall-clock epoch ms, default `Date.now`. Wall time, not monotonic: certificate validity is
   * stated in calendar dates, and a host whose clock is wrong fails TLS for the same reason.
   */
  readonly clock?: () => number;
  readonly logger?: IdentityLogger;
  /**
   * Warn when less than this remains before `notAfter`. Default: a quarter of the certificate's
   * lifetime, at most 7 days (see `defaultWarnBeforeMs`).
   */
  readonly warnBeforeMs?: number;
  /** Quiet period after the last file event before re-reading the set, and before its one retry. */
  readonly settleMs?: number;
  /** A new certificate set was installed (not called for the first load). */
  readonly onChange?: (current: CertificateFacts, previous: CertificateFacts) => void;
}

export const TLS_IDENTITY_ERROR_CODE = "REMORA_ERR_TLS_IDENTITY";

/** A certificate set that cannot be used; `message` names the file and the reason in words. */
export class TlsIdentityError extends Error {
  override readonly name = "TlsIdentityError";
  readonly code = TLS_IDENTITY_ERROR_CODE;
  /** The file at fault (the certificate file when the fault is between files). */
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.file = file;
  }
}

const DAY_MS = 86_400_000;
/** Node clamps longer timer delays to 1 ms (TimeoutOverflowWarning); longer waits re-arm. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
/** Intermediates followed from the leaf to the bundle; real chains are 1–3 deep. */
const MAX_CHAIN_DEPTH = 8;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The warning window when none is configured: a quarter of the lifetime, capped at 7 days.
 * The common renewers have acted well before then (Istio's agent at half the lifetime,
 * cert-manager with a third left), so the warning means rotation failed rather than that it is
 * about to happen; a 24 h mesh certificate warns with 6 h left, a 90-day one with 7 days left,
 * and a long-lived one does not warn for months.
 */
export function defaultWarnBeforeMs(notBefore: number, notAfter: number): number {
  return Math.min((notAfter - notBefore) / 4, 7 * DAY_MS);
}

/** One validated set: what was read, what it means, and the context built from it. */
interface LoadedSet {
  readonly texts: readonly [cert: string, key: string, ca: string];
  readonly facts: CertificateFacts;
  readonly trustBundle: TrustBundleFacts;
  readonly secureContext: SecureContext;
}

/**
 * Loads, validates and watches this workload's certificate, key and trust bundle.
 *
 * `secureContext` is always the last good set: a server's `SNICallback` (or
 * `server.setSecureContext`) and a client's `secureContext` option read it per handshake, so a
 * rotation reaches new connections while open ones keep the context they were built with.
 *
 * Rotation: the three files are watched (in-place writes, write-then-rename, the kubelet's
 * `..data` symlink swap: see WatchedFile). Any change re-reads all three after `settleMs` of
 * quiet. A set that fails validation is retried once, `settleMs` later, before it is refused:
 * tools that write `tls.crt` and then `tls.key` as two steps (cert-manager's csi driver, a
 * `kubectl cp`, an operator's script) leave a mismatched pair on disk in between, and the key's
 * own write event may have been folded into the first read. A refused set is logged as an error
 * and the last good one stays in use; the next change to any of the files tries again.
 */
export class WorkloadIdentity {
  readonly files: WorkloadIdentityFiles;
  readonly #clock: () => number;
  readonly #logger: IdentityLogger | undefined;
  readonly #warnBeforeMs: number | undefined;
  readonly #settleMs: number;
  readonly #onChange: ((current: CertificateFacts, previous: CertificateFacts) => void) | undefined;
  #current: LoadedSet | undefined;
  #watchers: WatchedFile[] = [];
  #settleTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  /** 0: the next attempt is a change's first; 1: it is the retry. */
  #attempt = 0;
  #reloading = false;
  #reloadAgain = false;
  #closed = false;
  /** The current set's expiry warnings (certificate, trust bundle) have been logged. */
  #warned = { workload: false, ca: false };

  constructor(files: WorkloadIdentityFiles, options: WorkloadIdentityOptions = {}) {
    this.files = files;
    this.#clock = options.clock ?? Date.now;
    this.#logger = options.logger;
    this.#warnBeforeMs = options.warnBeforeMs;
    this.#settleMs = options.settleMs ?? 250;
    this.#onChange = options.onChange;
    if (this.#warnBeforeMs !== undefined && !(this.#warnBeforeMs >= 0)) {
      throw new RangeError(`warnBeforeMs must be >= 0, got ${this.#warnBeforeMs}`);
    }
  }

  /**
   * Read and validate the files (throws TlsIdentityError if they are unusable), then watch them.
   * Resolves once `secureContext` is ready.
   */
  async start(): Promise<void> {
    if (this.#current !== undefined || this.#closed) throw new Error("start() called twice");
    const set = await this.#load();
    this.#install(set);
    const paths = [this.files.certFile, this.files.keyFile, this.files.caFile];
    paths.forEach((path, index) => {
      const watcher = new WatchedFile(path, () => this.#changed(), {
        // WatchedFile only tells us that its text changed; the set is re-read as a whole.
        debounceMs: Math.min(100, this.#settleMs),
        onUnreadable: (error) =>
          this.#logger?.debug({ file: path, err: error }, "tls identity file unreadable for now"),
        onWatchError: (error, directory) =>
          this.#logger?.warn({ directory, err: error }, "tls identity watch failed"),
      });
      watcher.start(set.texts[index]);
      // A write between our read and the watch would otherwise go unseen.
      watcher.check();
      this.#watchers.push(watcher);
    });
  }

  /** The context of the last good set; read it per handshake, never cache it. */
  get secureContext(): SecureContext {
    return this.#required().secureContext;
  }

  get certificate(): CertificateFacts {
    return this.#required().facts;
  }

  /** The first SPIFFE ID of the certificate, or undefined if it carries none. */
  get spiffeId(): string | undefined {
    return this.#required().facts.spiffeIds[0];
  }

  /** The trust bundle's first certificate to expire. */
  get trustBundle(): TrustBundleFacts {
    return this.#required().trustBundle;
  }

  /** Seconds until the current certificate expires (negative once it has): the expiry gauge. */
  expirySeconds(): number {
    return (this.#required().facts.notAfter - this.#clock()) / 1000;
  }

  /** Seconds until the trust bundle's first certificate expires: the `kind="ca"` gauge. */
  caExpirySeconds(): number {
    return (this.#required().trustBundle.notAfter - this.#clock()) / 1000;
  }

  /**
   * Re-read the files now (a SIGHUP, an admin call, a test). Resolves true if the set on disk is
   * in use afterwards (new or unchanged), false if it was refused (logged; the old one stays).
   */
  async reload(): Promise<boolean> {
    if (this.#current === undefined) throw new Error("reload() before start()");
    try {
      const set = await this.#load();
      if (!this.#closed) this.#install(set);
      return true;
    } catch (error) {
      if (!(error instanceof TlsIdentityError)) throw error;
      this.#logRefusal(error);
      return false;
    }
  }

  /**
   * Log the expiry warning of the certificate, and of the trust bundle's first certificate to
   * expire, once each per set, when inside the warning window. Runs from a timer; public so a
   * caller with an injected clock can drive it.
   */
  checkExpiry(): void {
    const current = this.#current;
    if (current === undefined || this.#closed) return;
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    const now = this.#clock();
    const next = Math.min(
      this.#warnIfDue("workload", current.facts, now, (expiry) =>
        expiry.expired
          ? `workload certificate expired ${expiry.date} (${expiry.distance} ago) and has not been rotated`
          : `workload certificate expires ${expiry.date} (in ${expiry.distance}) and has not been rotated`,
      ),
      this.#warnIfDue("ca", current.trustBundle, now, (expiry) => {
        const which = `CA certificate ${oneLine(current.trustBundle.subject)} in ${this.files.caFile}`;
        return expiry.expired
          ? `${which} expired ${expiry.date} (${expiry.distance} ago); certificates it signed no longer verify`
          : `${which} expires ${expiry.date} (in ${expiry.distance}) and has not been replaced`;
      }),
    );
    if (next === Number.POSITIVE_INFINITY) return;
    this.#expiryTimer = setTimeout(
      () => this.checkExpiry(),
      Math.min(next - now, MAX_TIMER_DELAY_MS),
    );
    this.#expiryTimer.unref();
  }

  /** Warns if `facts` is inside its window (once); else returns when it will be (epoch ms). */
  #warnIfDue(
    kind: "workload" | "ca",
    facts: { readonly serial: string; readonly notBefore: number; readonly notAfter: number },
    now: number,
    message: (expiry: { expired: boolean; date: string; distance: string }) => string,
  ): number {
    const { notBefore, notAfter } = facts;
    const warnAt = notAfter - (this.#warnBeforeMs ?? defaultWarnBeforeMs(notBefore, notAfter));
    if (now < warnAt) return warnAt;
    if (this.#warned[kind]) return Number.POSITIVE_INFINITY;
    this.#warned[kind] = true;
    const expired = now >= notAfter;
    this.#logger?.warn(
      {
        kind,
        file: kind === "workload" ? this.files.certFile : this.files.caFile,
        serial: facts.serial,
        notAfter: isoDate(notAfter),
        expirySeconds: Math.round((notAfter - now) / 1000),
      },
      message({
        expired,
        date: isoDate(notAfter),
        distance: relative(expired ? now - notAfter : notAfter - now),
      }),
    );
    return Number.POSITIVE_INFINITY;
  }

  /** Stop watching. The last secureContext stays readable for connections still being set up. */
  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers) watcher.stop();
    this.#watchers = [];
    clearTimeout(this.#settleTimer);
    clearTimeout(this.#expiryTimer);
    this.#settleTimer = undefined;
    this.#expiryTimer = undefined;
  }

  #required(): LoadedSet {
    if (this.#current === undefined) throw new Error("WorkloadIdentity used before start()");
    return this.#current;
  }

  /** A file's text changed: a fresh attempt (with its own retry) after the settle delay. */
  #changed(): void {
    if (this.#closed) return;
    this.#attempt = 0;
    this.#schedule();
  }

  #schedule(): void {
    clearTimeout(this.#settleTimer);
    this.#settleTimer = setTimeout(() => void this.#reloadFromWatch(), this.#settleMs);
  }

  async #reloadFromWatch(): Promise<void> {
    this.#settleTimer = undefined;
    // Serialised: a change during a read causes one more pass after it.
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    this.#reloading = true;
    try {
      do {
        this.#reloadAgain = false;
        await this.#attemptReload();
      } while (this.#reloadAgain && !this.#closed);
    } finally {
      this.#reloading = false;
    }
  }

  async #attemptReload(): Promise<void> {
    let set: LoadedSet;
    try {
      set = await this.#load();
    } catch (error) {
      if (this.#closed) return;
      if (!(error instanceof TlsIdentityError)) throw error;
      if (this.#attempt === 0 && this.#settleTimer === undefined) {
        this.#attempt = 1;
        this.#logger?.debug(
          { file: error.file, reason: error.message },
          "tls identity files not usable yet, retrying once (a rotation may be half written)",
        );
        this.#schedule();
        return;
      }
      if (this.#settleTimer !== undefined) return; // a newer change is already scheduled
      this.#logRefusal(error);
      return;
    }
    if (!this.#closed) this.#install(set);
  }

  #logRefusal(error: TlsIdentityError): void {
    const current = this.#current?.facts;
    this.#logger?.error(
      { code: error.code, file: error.file, reason: error.message, keptSerial: current?.serial },
      `tls identity rotation refused: ${error.message}; keeping certificate ${current?.serial}`,
    );
  }

  #install(set: LoadedSet): void {
    const previous = this.#current;
    if (previous !== undefined && sameTexts(previous.texts, set.texts)) return;
    this.#current = set;
    this.#warned = { workload: false, ca: false };
    if (previous !== undefined) {
      this.#logger?.info(
        {
          oldSerial: previous.facts.serial,
          newSerial: set.facts.serial,
          notAfter: isoDate(set.facts.notAfter),
          spiffeId: set.facts.spiffeIds[0],
        },
        "tls identity rotated",
      );
      this.#onChange?.(set.facts, previous.facts);
    } else {
      this.#logger?.info(
        {
          serial: set.facts.serial,
          notAfter: isoDate(set.facts.notAfter),
          spiffeId: set.facts.spiffeIds[0],
        },
        "tls identity loaded",
      );
    }
    this.checkExpiry();
  }

  async #load(): Promise<LoadedSet> {
    const { certFile, keyFile, caFile } = this.files;
    const [certText, keyText, caText] = await Promise.all([
      readText(certFile),
      readText(keyFile),
      readText(caFile),
    ]);
    const { trustBundle, ...facts } = validate(
      { certFile, keyFile, caFile },
      { certText, keyText, caText },
      this.#clock(),
    );
    let secureContext: SecureContext;
    try {
      secureContext = createSecureContext({ cert: certText, key: keyText, ca: caText });
    } catch (error) {
      // Validation above should make this unreachable; OpenSSL may still refuse (e.g. a weak key).
      throw new TlsIdentityError(
        certFile,
        `${certFile} and ${keyFile} are refused by TLS: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return { texts: [certText, keyText, caText], facts, trustBundle, secureContext };
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? error})`;
    throw new TlsIdentityError(path, `${path} ${why}`, { cause: error });
  }
}

/**
 * The checks, in the order an operator would fix them: each file parses, the certificate is in
 * its validity window, the key is its key, the bundle holds a certificate not yet expired, and
 * the certificate chains to the bundle.
 */
export function validate(
  files: WorkloadIdentityFiles,
  texts: { certText: string; keyText: string; caText: string },
  now: number,
): ValidatedFacts {
  const { certFile, keyFile, caFile } = files;
  const chain = parseCertificates(certFile, texts.certText);
  const leaf = chain[0]!;
  const notBefore = leaf.validFromDate.getTime();
  const notAfter = leaf.validToDate.getTime();
  if (now >= notAfter) {
    throw new TlsIdentityError(
      certFile,
      `${certFile} expired ${isoDate(notAfter)} (${relative(now - notAfter)} ago)`,
    );
  }
  if (now < notBefore) {
    throw new TlsIdentityError(
      certFile,
      `${certFile} is not valid yet: valid from ${isoDate(notBefore)} (in ${relative(notBefore - now)}); is this host's clock right?`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(texts.keyText);
  } catch (error) {
    throw new TlsIdentityError(
      keyFile,
      `${keyFile} is not a readable PEM private key (${(error as Error).message})`,
      { cause: error },
    );
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsIdentityError(keyFile, `${keyFile} does not match ${certFile}`);
  }
  const bundle = parseCertificates(caFile, texts.caText);
  const byExpiry = [...bundle].sort((a, b) => a.validToDate.getTime() - b.validToDate.getTime());
  const first = byExpiry[0]!;
  const last = byExpiry[byExpiry.length - 1]!;
  const lastNotAfter = last.validToDate.getTime();
  if (now >= lastNotAfter) {
    const what = bundle.length > 1 ? `every certificate in ${caFile}` : caFile;
    throw new TlsIdentityError(
      caFile,
      `${what} expired (the last ${isoDate(lastNotAfter)}, ${relative(now - lastNotAfter)} ago): no peer certificate can verify against it`,
    );
  }
  if (!chainsTo(leaf, chain.slice(1), bundle)) {
    throw new TlsIdentityError(
      certFile,
      `${certFile} is not signed by any certificate in ${caFile} (issuer: ${oneLine(leaf.issuer)}; ${caFile} holds: ${bundle.map((ca) => oneLine(ca.subject)).join(" | ")})`,
    );
  }
  return {
    serial: leaf.serialNumber.toUpperCase(),
    notBefore,
    notAfter,
    spiffeIds: spiffeIdsOf(leaf.subjectAltName),
    subject: leaf.subject,
    issuer: leaf.issuer,
    fingerprint256: leaf.fingerprint256,
    trustBundle: {
      subject: first.subject,
      serial: first.serialNumber.toUpperCase(),
      notBefore: first.validFromDate.getTime(),
      notAfter: first.validToDate.getTime(),
    },
  };
}

function parseCertificates(file: string, text: string): X509Certificate[] {
  const blocks = text.match(PEM_CERTIFICATE);
  if (blocks === null) {
    throw new TlsIdentityError(file, `${file} holds no PEM certificate (no "BEGIN CERTIFICATE")`);
  }
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      const which = blocks.length > 1 ? `certificate ${index + 1} in ${file}` : file;
      throw new TlsIdentityError(
        file,
        `${which} does not parse as X.509 (${(error as Error).message})`,
        { cause: error },
      );
    }
  });
}

/**
 * Whether `leaf`, through the intermediates sent beside it, is issued by a certificate in the
 * bundle. Issued means both the names (checkIssued) and the signature (verify) match, so a
 * forged certificate that copies a CA's name is not enough.
 */
function chainsTo(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  bundle: readonly X509Certificate[],
): boolean {
  const issues = (issuer: X509Certificate, cert: X509Certificate) =>
    cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  let cert = leaf;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    if (bundle.some((ca) => issues(ca, cert))) return true;
    const next = intermediates.find((candidate) => candidate !== cert && issues(candidate, cert));
    if (next === undefined) return false;
    cert = next;
  }
  return false;
}

/**
 * The `spiffe://` URIs in node's `subjectAltName` text (`DNS:a, URI:spiffe://td/ns/x/sa/y`).
 * Node quotes a value holding a comma or quote as a JSON string (CVE-2021-44532), so quoted
 * values are decoded, and a comma inside one does not split it.
 */
export function spiffeIdsOf(subjectAltName: string | undefined): string[] {
  if (subjectAltName === undefined) return [];
  const ids: string[] = [];
  for (const match of subjectAltName.matchAll(/(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = match[1]!;
    const uri = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    if (uri.startsWith("spiffe://")) ids.push(uri);
  }
  return ids;
}

function sameTexts(a: readonly string[], b: readonly string[]): boolean {
  return a.every((text, index) => text === b[index]);
}

/** `2026-12-01T10:00:00Z`: certificates have whole seconds. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A duration for people: `45 s`, `12 min`, `3 h`, `9 d`. */
export function relative(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 120) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.round(min / 60);
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} d`;
}

/** Node prints multi-valued names on several lines. */
function oneLine(name: string): string {
  return name.split("\n").join(", ");
}
