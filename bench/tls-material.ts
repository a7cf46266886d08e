/**
 * The certificates a benchmark run with TLS targets needs, minted once at its start with
 * remora's own CA tool (tls/ca.ts) into the run's temp dir: a mesh CA, the identity of every
 * proxy that terminates or originates mTLS, and the load generator's client certificate.
 *
 * Key types. The proxies' keys follow `--tls-key` (default RSA 2048, what Istio's CA issues, so
 * the figures are what a default mesh pays; ECDSA P-256 handshakes are several times cheaper on
 * the server, and `--tls-key ecdsa` measures that). The load generator's own key is always
 * ECDSA P-256: the client signs once per handshake too (TLS 1.3 CertificateVerify), and an RSA
 * signature per handshake on the load core, which it shares with the backend, would make the
 * load generator the bottleneck of the handshake scenario instead of the proxy.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCa, issueWorkloadCertificate, type KeyType } from "../tls/ca.js";

export const BENCH_NAMESPACE = "bench";

/** A certificate and key as files (Kubernetes TLS Secret names), plus the two in one PEM. */
export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Certificate then key in one file: HAProxy's `crt`. */
  readonly pemFile: string;
  /** `spiffe://cluster.local/ns/bench/sa/<service account>`. */
  readonly spiffeId: string;
}

export interface TlsMaterial {
  /** Key type of the CA and the proxies' certificates. */
  readonly keyType: KeyType;
  /** The trust bundle (the CA certificate), for every side. */
  readonly caFile: string;
  /** Whatever terminates the client's mTLS: remora-tls, haproxy-tls, the 2-hop target's inbound remora. */
  readonly server: CertificateFiles;
  /** The 2-hop target's outbound remora, which originates mTLS. */
  readonly outbound: CertificateFiles;
  /** The load generator (always ECDSA P-256, see above). */
  readonly client: CertificateFiles;
}

/** Mints a CA and three workload certificates into `dir` (which must exist); ~0.1–0.5 s with RSA. */
export function mintTlsMaterial(dir: string, keyType: KeyType): TlsMaterial {
  const ca = createCa({ keyType });
  const caFile = join(dir, "ca.crt");
  writeFileSync(caFile, ca.certPem);
  const issue = (serviceAccount: string, type: KeyType): CertificateFiles => {
    const cert = issueWorkloadCertificate({
      ca,
      namespace: BENCH_NAMESPACE,
      serviceAccount,
      keyType: type,
      // The harness connects to 127.0.0.1; a name lets an ordinary client check it if it wants.
      dnsNames: ["localhost"],
    });
    const base = join(dir, serviceAccount);
    const files = {
      certFile: `${base}.crt`,
      keyFile: `${base}.key`,
      pemFile: `${base}.pem`,
      spiffeId: cert.spiffeId,
    };
    writeFileSync(files.certFile, cert.certPem);
    writeFileSync(files.keyFile, cert.keyPem, { mode: 0o600 });
    writeFileSync(files.pemFile, `${cert.certPem.trimEnd()}\n${cert.keyPem}`, { mode: 0o600 });
    return files;
  };
  return {
    keyType,
    caFile,
    server: issue("server", keyType),
    outbound: issue("outbound", keyType),
    client: issue("load-generator", "ecdsa"),
  };
}

/**
 * The key-exchange groups the load generator offers. Node 24's OpenSSL 3.5 offers the hybrid
 * post-quantum X25519MLKEM768 first, which remora (on Node 24) accepts and HAProxy 2.6 (on
 * Debian's OpenSSL 3.0) does not know: left alone, the two proxies would be measured on different
 * key exchanges. Offering X25519 (and P-256 as a fallback) puts both on the same one, the
 * classical default of either.
 */
export const CLIENT_GROUPS = "X25519:P-256";

/** What a client needs to speak mTLS to a target: file paths, so only names cross IPC. */
export interface ClientTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export function clientTlsOf(material: TlsMaterial): ClientTls {
  return {
    certFile: material.client.certFile,
    keyFile: material.client.keyFile,
    caFile: material.caFile,
  };
}
