/**
 * remora's CA tool: a self-signed mesh CA and the workload certificates it issues (X509-SVIDs:
 * the SPIFFE ID as the only URI SAN). Pure functions of their inputs plus an injected clock and
 * random source; writing files is tls/ca-command.ts's job.
 *
 * Fields follow Istio's self-signed CA where it has a choice (RSA 2048, O=<trust domain>, 24 h
 * workload certificates) and the SPIFFE X509-SVID spec where Istio is silent.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  X509Certificate,
} from "node:crypto";
import forge from "node-forge";
import {
  encodeName,
  keyIdentifier,
  type NameAttribute,
  randomSerial,
  signCertificate,
} from "./certificate-signer.js";
import {
  DEFAULT_TRUST_DOMAIN,
  InvalidSpiffeIdError,
  spiffeId,
  trustDomainProblem,
  uriSansOf,
} from "./identity.js";

/** `rsa`: RSA 2048 (Istio's default). `ecdsa`: ECDSA on P-256. */
export type KeyType = "rsa" | "ecdsa";
export const KEY_TYPES: readonly KeyType[] = ["rsa", "ecdsa"];

export const DEFAULT_CA_TTL_MS = 10 * 365 * 86_400_000;
export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3_600_000;
/**
 * notBefore is set this far in the past so a peer whose clock runs behind accepts a certificate
 * issued a moment ago; 5 minutes covers ordinary NTP drift and barely lengthens a 24 h life.
 */
export const CLOCK_SKEW_MS = 5 * 60_000;
export const CA_COMMON_NAME = "remora CA";

/** The CA material or a request to it is unusable; the message says why and what to do. */
export class CaError extends Error {
  override readonly name = "CaError";
  readonly code = "REMORA_ERR_CA";
}

/** A certificate and its private key, both PEM (the key PKCS #8, unencrypted). */
export interface CertificateAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** What the tool needs from the outside world; tests pin both. */
export interface CaEnvironment {
  /** Epoch milliseconds. */
  readonly now?: () => number;
  readonly random?: (bytes: number) => Buffer;
}

export interface CreateCaOptions extends CaEnvironment {
  /** Default `cluster.local`. */
  readonly trustDomain?: string;
  /** Default 10 years. */
  readonly ttlMs?: number;
  /** Default `rsa`. */
  readonly keyType?: KeyType;
}

export interface IssueOptions extends CaEnvironment {
  readonly ca: CertificateAndKey;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Default: the CA's own (its `spiffe://<td>` URI SAN, else its O=). A different one is refused. */
  readonly trustDomain?: string;
  /** Default 24 hours. */
  readonly ttlMs?: number;
  /** Extra DNS SANs (e.g. `reviews.default.svc`); the identity is the URI SAN regardless. */
  readonly dnsNames?: readonly string[];
  /** Default `rsa`: the workload key's type (the signature's follows the CA key). */
  readonly keyType?: KeyType;
}

export interface WorkloadCertificate extends CertificateAndKey {
  /** The CA certificate: the trust bundle to install beside the workload's (`ca.crt`). */
  readonly caPem: string;
  /** The identity written into the URI SAN. */
  readonly spiffeId: string;
  readonly notAfter: Date;
}

/**
 * A self-signed CA: basicConstraints CA:true (critical), keyUsage keyCertSign + cRLSign
 * (critical), subject `O=<trust domain>, CN=remora CA`, and the trust domain's SPIFFE ID
 * `spiffe://<td>` as URI SAN (SPIFFE X509-SVID §4.1 lets a signing certificate carry one; remora
 * reads the trust domain back from it when issuing).
 */
export function createCa(options: CreateCaOptions = {}): CertificateAndKey {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const problem = trustDomainProblem(trustDomain);
  if (problem) throw new InvalidSpiffeIdError(trustDomain, problem, "trust domain");
  const { publicKey, privateKey } = generateKey(options.keyType ?? "rsa");
  const nowMs = (options.now ?? Date.now)();
  const subject: NameAttribute[] = [
    { shortName: "O", value: trustDomain },
    { shortName: "CN", value: CA_COMMON_NAME },
  ];
  const ski = keyIdentifier(publicKey);
  const certPem = signCertificate(
    {
      serial: randomSerial(options.random ?? randomBytes),
      issuerDer: encodeName(subject),
      subject,
      notBefore: new Date(nowMs - CLOCK_SKEW_MS),
      notAfter: new Date(nowMs + (options.ttlMs ?? DEFAULT_CA_TTL_MS)),
      publicKey,
      extensions: [
        { name: "basicConstraints", cA: true, critical: true },
        { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
        { name: "subjectKeyIdentifier", value: octetString(ski) },
        { name: "authorityKeyIdentifier", keyIdentifier: ski.toString("binary") },
        { name: "subjectAltName", altNames: [{ type: 6, value: `spiffe://${trustDomain}` }] },
      ],
    },
    privateKey,
  );
  return { certPem, keyPem: exportKey(privateKey) };
}

/**
 * A workload certificate for `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`: the SPIFFE ID as
 * URI SAN (plus any DNS names), basicConstraints CA:false (critical), keyUsage digitalSignature +
 * keyEncipherment (critical), extKeyUsage serverAuth + clientAuth (a sidecar is both ends of
 * mTLS), random serial, subject/authority key identifiers. The subject is empty: the identity is
 * the SAN, which is then critical (RFC 5280 §4.2.1.6), as Istio's are.
 */
export function issueWorkloadCertificate(options: IssueOptions): WorkloadCertificate {
  const ca = loadCa(options.ca, (options.now ?? Date.now)());
  const trustDomain = options.trustDomain ?? ca.trustDomain;
  if (trustDomain !== ca.trustDomain) {
    throw new CaError(
      `trust domain "${trustDomain}" differs from the CA's "${ca.trustDomain}": a certificate must be issued by its own trust domain's CA`,
    );
  }
  const id = spiffeId(trustDomain, options.namespace, options.serviceAccount);
  const dnsNames = options.dnsNames ?? [];
  for (const name of dnsNames) checkDnsName(name);
  const nowMs = (options.now ?? Date.now)();
  const notAfter = new Date(nowMs + (options.ttlMs ?? DEFAULT_WORKLOAD_TTL_MS));
  if (notAfter.getTime() > ca.notAfter.getTime()) {
    throw new CaError(
      `the certificate would outlive its CA (CA valid until ${ca.notAfter.toISOString()}, certificate until ${notAfter.toISOString()}): use a shorter --ttl or a new CA`,
    );
  }
  const { publicKey, privateKey } = generateKey(options.keyType ?? "rsa");
  const certPem = signCertificate(
    {
      serial: randomSerial(options.random ?? randomBytes),
      issuerDer: ca.subjectDer,
      subject: [],
      notBefore: new Date(nowMs - CLOCK_SKEW_MS),
      notAfter,
      publicKey,
      extensions: [
        { name: "basicConstraints", cA: false, critical: true },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
        { name: "extKeyUsage", serverAuth: true, clientAuth: true },
        { name: "subjectKeyIdentifier", value: octetString(keyIdentifier(publicKey)) },
        { name: "authorityKeyIdentifier", keyIdentifier: ca.keyId.toString("binary") },
        {
          name: "subjectAltName",
          critical: true,
          altNames: [{ type: 6, value: id }, ...dnsNames.map((value) => ({ type: 2, value }))],
        },
      ],
    },
    ca.privateKey,
  );
  return {
    certPem,
    keyPem: exportKey(privateKey),
    caPem: ca.certPem,
    spiffeId: id,
    notAfter: new Date(Math.floor(notAfter.getTime() / 1000) * 1000),
  };
}

interface LoadedCa {
  readonly certPem: string;
  readonly privateKey: KeyObject;
  readonly subjectDer: Buffer;
  readonly keyId: Buffer;
  readonly trustDomain: string;
  readonly notAfter: Date;
}

/** Checks that the CA material can sign: a CA certificate, its own key, currently valid. */
function loadCa(material: CertificateAndKey, nowMs: number): LoadedCa {
  let certificate: X509Certificate;
  let privateKey: KeyObject;
  try {
    certificate = new X509Certificate(material.certPem);
  } catch (error) {
    throw new CaError(`the CA certificate is not a PEM certificate (${(error as Error).message})`);
  }
  try {
    privateKey = createPrivateKey(material.keyPem);
  } catch (error) {
    throw new CaError(`the CA key is not a PEM private key (${(error as Error).message})`);
  }
  if (!certificate.ca)
    throw new CaError("the CA certificate is not a CA (basicConstraints CA:false)");
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new CaError("the CA key does not belong to the CA certificate");
  }
  const notAfter = new Date(certificate.validTo);
  if (notAfter.getTime() <= nowMs) {
    throw new CaError(`the CA certificate expired on ${notAfter.toISOString()}`);
  }
  if (new Date(certificate.validFrom).getTime() > nowMs) {
    throw new CaError(`the CA certificate is not valid before ${certificate.validFrom}`);
  }
  const der = forge.asn1.fromDer(certificate.raw.toString("binary"), {
    strict: true,
    decodeBitStrings: false,
  } as unknown as boolean);
  const tbs = (der.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[];
  // version [0], serial, signature, issuer, validity, subject (RFC 5280 §4.1)
  const subjectDer = Buffer.from(forge.asn1.toDer(tbs[5]!).getBytes(), "binary");
  return {
    certPem: certificate.toString(),
    privateKey,
    subjectDer,
    keyId: subjectKeyIdOf(tbs) ?? keyIdentifier(createPublicKey(privateKey)),
    trustDomain: trustDomainOf(certificate),
    notAfter,
  };
}

/** The CA's subjectKeyIdentifier as written (a CA made elsewhere may compute it differently). */
function subjectKeyIdOf(tbs: forge.asn1.Asn1[]): Buffer | undefined {
  const extensions = tbs.find(
    (n) => n.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && n.type === 3,
  );
  const list = (extensions?.value as forge.asn1.Asn1[] | undefined)?.[0]?.value as
    | forge.asn1.Asn1[]
    | undefined;
  for (const extension of list ?? []) {
    const parts = extension.value as forge.asn1.Asn1[];
    if (forge.asn1.derToOid(parts[0]!.value as string) !== "2.5.29.14") continue;
    const inner = forge.asn1.fromDer(parts[parts.length - 1]!.value as string);
    return Buffer.from(inner.value as string, "binary");
  }
  return undefined;
}

/** `spiffe://<td>` among the CA's URI SANs, else its O=; checked as a trust domain name. */
function trustDomainOf(certificate: X509Certificate): string {
  const fromSan = uriSansOf(certificate.subjectAltName)
    .map((uri) => /^spiffe:\/\/([^/]+)$/.exec(uri)?.[1])
    .find((td) => td !== undefined);
  const fromSubject = /^O=(.*)$/m.exec(certificate.subject)?.[1];
  const trustDomain = fromSan ?? fromSubject;
  if (trustDomain === undefined || trustDomainProblem(trustDomain) !== undefined) {
    throw new CaError(
      "cannot tell the CA's trust domain (no spiffe://<trust-domain> URI SAN and no valid O=): pass --trust-domain",
    );
  }
  return trustDomain;
}

// RFC 1123 host names: letters, digits, '-', dot-separated labels of 1-63, at most 253; a leading
// "*." wildcard label is allowed (RFC 6125 §6.4.3).
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/i;

function checkDnsName(name: string): void {
  const labels = (name.startsWith("*.") ? name.slice(2) : name).split(".");
  if (name.length > 253 || !labels.every((l) => l.length <= 63 && DNS_LABEL.test(l))) {
    throw new CaError(
      `DNS name "${name}" is not a host name (dot-separated letters, digits and '-', optionally starting with "*.")`,
    );
  }
}

function generateKey(keyType: KeyType): { publicKey: KeyObject; privateKey: KeyObject } {
  switch (keyType) {
    case "rsa":
      return generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 });
    case "ecdsa":
      return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    default:
      throw new CaError(`unknown key type "${String(keyType)}": expected rsa or ecdsa`);
  }
}

function exportKey(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }) as string;
}

function octetString(bytes: Buffer): forge.asn1.Asn1 {
  return forge.asn1.create(
    forge.asn1.Class.UNIVERSAL,
    forge.asn1.Type.OCTETSTRING,
    false,
    bytes.toString("binary"),
  );
}
