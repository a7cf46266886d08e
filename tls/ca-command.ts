/**
 * `remora ca init` and `remora ca issue`: the CA tool's files. Arguments arrive parsed and checked
 * (proxy/cli.ts); this module reads and writes the files and returns what to print. The CLI loads
 * it on demand, so the proxy never loads node-forge.
 *
 * File names are a Kubernetes TLS Secret's (`tls.crt`, `tls.key`, `ca.crt`), so the output of
 * `ca issue` mounts into a pod as is.
 */
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CaError,
  type CertificateAndKey,
  createCa,
  issueWorkloadCertificate,
  type KeyType,
} from "./ca.js";

/** Private keys: owner read/write only, set when the file is created (never chmod-ed after). */
export const KEY_MODE = 0o600;
/** Certificates are public. */
export const CERT_MODE = 0o644;

export interface CaInitOptions {
  readonly out: string;
  readonly trustDomain?: string;
  readonly ttlMs?: number;
  readonly keyType?: KeyType;
  /** Replace an existing CA in `out`. */
  readonly force?: boolean;
}

/** Writes `out/ca.crt` and `out/ca.key`; returns the lines to print. */
export async function caInit(options: CaInitOptions): Promise<string> {
  const certPath = join(options.out, "ca.crt");
  const keyPath = join(options.out, "ca.key");
  const ca = createCa(options);
  await makeDirectory(options.out);
  if (options.force) {
    await replaceFile(keyPath, ca.keyPem, KEY_MODE);
  } else {
    // 'wx' fails if the key exists, atomically: two concurrent inits cannot both win.
    await writeFile(keyPath, ca.keyPem, { mode: KEY_MODE, flag: "wx" }).catch((error: unknown) => {
      throw (error as NodeJS.ErrnoException).code === "EEXIST"
        ? new CaError(
            `${keyPath} exists: refusing to replace a CA key (pass --force to replace it; certificates the old CA issued will stop verifying)`,
          )
        : fileError("write", keyPath, error);
    });
  }
  await replaceFile(certPath, ca.certPem, CERT_MODE);
  const x509 = new X509Certificate(ca.certPem);
  return [
    `wrote ${certPath} (${x509.subject.replace(/\n/g, ", ")}, valid until ${new Date(x509.validTo).toISOString()})`,
    `wrote ${keyPath} (mode 0600: keep it secret; anyone holding it can mint mesh identities)`,
    "",
  ].join("\n");
}

export interface CaIssueOptions {
  /** The directory holding `ca.crt` and `ca.key`. */
  readonly caDir: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly out: string;
  readonly ttlMs?: number;
  readonly dnsNames?: readonly string[];
  readonly keyType?: KeyType;
  readonly trustDomain?: string;
}

/** Writes `out/tls.crt`, `out/tls.key` and `out/ca.crt`; returns the lines to print. */
export async function caIssue(options: CaIssueOptions): Promise<string> {
  const ca: CertificateAndKey = {
    certPem: await readCaFile(options.caDir, "ca.crt"),
    keyPem: await readCaFile(options.caDir, "ca.key"),
  };
  const issued = issueWorkloadCertificate({
    ca,
    namespace: options.namespace,
    serviceAccount: options.serviceAccount,
    trustDomain: options.trustDomain,
    ttlMs: options.ttlMs,
    dnsNames: options.dnsNames,
    keyType: options.keyType,
  });
  await makeDirectory(options.out);
  // Each file is replaced atomically; a reader between the renames may see a new key with the
  // old certificate, which a watcher must treat as a mismatch and retry (the kubelet's symlink
  // swap has no such window).
  const files = {
    key: join(options.out, "tls.key"),
    cert: join(options.out, "tls.crt"),
    bundle: join(options.out, "ca.crt"),
  };
  await replaceFile(files.key, issued.keyPem, KEY_MODE);
  await replaceFile(files.cert, issued.certPem, CERT_MODE);
  await replaceFile(files.bundle, issued.caPem, CERT_MODE);
  return [
    `issued ${issued.spiffeId} (${options.keyType ?? "rsa"}), valid until ${issued.notAfter.toISOString()}`,
    `wrote ${files.cert}, ${files.key} (mode 0600), ${files.bundle}`,
    "",
  ].join("\n");
}

async function readCaFile(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new CaError(`${path} not found: --ca names the directory written by "remora ca init"`);
    }
    throw fileError("read", path, error);
  }
}

async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw fileError("create directory", dir, error);
  }
}

/**
 * Writes a sibling temp file created with `mode` (exclusive, so the mode applies at creation),
 * then renames it over `path`: readers see the old file or the new one, never half of one.
 */
async function replaceFile(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(temp, text, { mode, flag: "wx" });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw fileError("write", path, error);
  }
}

function fileError(action: string, path: string, error: unknown): CaError {
  const e = error as NodeJS.ErrnoException;
  const why =
    e.code === "EACCES"
      ? "permission denied"
      : e.code === "ENOTDIR"
        ? "not a directory"
        : e.message;
  return new CaError(`cannot ${action} ${path}: ${why}`);
}
