/**
 * Workload identities: Istio's SPIFFE IDs, `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
 * carried as a URI SAN in X.509 certificates (SPIFFE X509-SVID §2).
 *
 * This file is on the proxy's path (peer checks at every handshake), so it uses node:crypto only
 * and never node-forge: the CLI's `run` path must not load forge (test/import-graph.test.ts).
 */
import { X509Certificate } from "node:crypto";

/** Istio's default trust domain, and remora's. */
export const DEFAULT_TRUST_DOMAIN = "cluster.local";

/** The three parts of a workload identity. */
export interface SpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** A SPIFFE ID, or one of its parts, is malformed. */
export class InvalidSpiffeIdError extends Error {
  override readonly name = "InvalidSpiffeIdError";
  readonly code = "REMORA_ERR_BAD_SPIFFE_ID";
  /** The text that was rejected (the whole ID, or the one part). */
  readonly input: string;
  /** Why, in words, without the input (for messages that quote it themselves). */
  readonly reason: string;

  constructor(input: string, reason: string, what = "SPIFFE ID") {
    super(`invalid ${what} ${JSON.stringify(input)}: ${reason}`);
    this.input = input;
    this.reason = reason;
  }
}

const SCHEME = "spiffe://";
// DNS-1123 label (Kubernetes namespaces): lowercase alphanumerics and '-', alphanumeric at both ends.
const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;
// SPIFFE-ID §2.1 allows lowercase letters, digits, '.', '-' and '_' in a trust domain; remora
// also wants a DNS-shaped name (non-empty labels that do not start or end with '-').
const TRUST_DOMAIN_LABEL = /^[a-z0-9_](?:[-a-z0-9_]*[a-z0-9_])?$/;

/** Why `text` is not a trust domain name, or undefined when it is one. */
export function trustDomainProblem(text: string): string | undefined {
  if (text.length === 0) return "empty";
  if (text.length > 253) return "longer than 253 characters";
  if (text !== text.toLowerCase()) return "must be lowercase";
  for (const label of text.split(".")) {
    if (label.length === 0) return "has an empty label (leading, trailing or double dot)";
    if (label.length > 63) return `label "${label}" is longer than 63 characters`;
    if (!TRUST_DOMAIN_LABEL.test(label))
      return `label "${label}" may hold only a-z, 0-9, '-' and '_', and not start or end with '-'`;
  }
  return undefined;
}

/** Why `text` is not a Kubernetes namespace name (a DNS-1123 label), or undefined. */
export function namespaceProblem(text: string): string | undefined {
  if (text.length === 0) return "empty";
  if (text.length > 63) return "longer than 63 characters";
  if (!DNS1123_LABEL.test(text))
    return "must be a DNS-1123 label: lowercase a-z, 0-9 and '-', starting and ending with a letter or digit";
  return undefined;
}

/** Why `text` is not a Kubernetes service account name (a DNS-1123 subdomain), or undefined. */
export function serviceAccountProblem(text: string): string | undefined {
  if (text.length === 0) return "empty";
  if (text.length > 253) return "longer than 253 characters";
  if (!text.split(".").every((label) => DNS1123_LABEL.test(label)))
    return "must be a DNS-1123 subdomain: dot-separated lowercase a-z, 0-9 and '-', each part starting and ending with a letter or digit";
  return undefined;
}

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`, each part checked first. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const problem =
    part(trustDomain, trustDomainProblem, "trust domain") ??
    part(namespace, namespaceProblem, "namespace") ??
    part(serviceAccount, serviceAccountProblem, "service account");
  if (problem) throw problem;
  return `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

function part(
  text: string,
  check: (t: string) => string | undefined,
  what: string,
): InvalidSpiffeIdError | undefined {
  const reason = check(text);
  return reason === undefined ? undefined : new InvalidSpiffeIdError(text, reason, what);
}

/**
 * Parses an Istio workload identity strictly: the scheme `spiffe://` in lowercase, a trust domain
 * (no port, user info or uppercase), then exactly `/ns/<namespace>/sa/<service-account>`; no
 * query, fragment, percent-encoding, empty or extra segments, trailing slash.
 */
export function parseSpiffeId(text: string): SpiffeId {
  const fail = (reason: string): never => {
    throw new InvalidSpiffeIdError(text, reason);
  };
  if (!text.startsWith(SCHEME)) fail('must start with "spiffe://"');
  if (/[?#%]/.test(text)) fail("must not contain a query, fragment or percent-encoding");
  const rest = text.slice(SCHEME.length);
  const slash = rest.indexOf("/");
  if (slash === -1) fail("has no path: expected /ns/<namespace>/sa/<service-account>");
  const trustDomain = rest.slice(0, slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) fail(`trust domain "${trustDomain}" ${tdProblem}`);
  const segments = rest.slice(slash + 1).split("/");
  if (segments.length !== 4 || segments[0] !== "ns" || segments[2] !== "sa") {
    fail("path must be exactly /ns/<namespace>/sa/<service-account>");
  }
  const [, namespace, , serviceAccount] = segments as [string, string, string, string];
  const nsProblem = namespaceProblem(namespace);
  if (nsProblem) fail(`namespace "${namespace}" ${nsProblem}`);
  const saProblem = serviceAccountProblem(serviceAccount);
  if (saProblem) fail(`service account "${serviceAccount}" ${saProblem}`);
  return { trustDomain, namespace, serviceAccount };
}

/**
 * The URI SANs of Node's `subjectAltName` text (X509Certificate#subjectAltName, or
 * `tlsSocket.getPeerCertificate().subjectaltname`). Node joins entries with ", " and writes a
 * value that holds `,` `"` `\` `'` or control characters as a JSON string (since 17.3.1,
 * CVE-2021-44532), so a comma inside a DNS name cannot forge a second entry: splitting on ", "
 * outside quotes is exact.
 */
export function uriSansOf(subjectAltName: string | undefined): string[] {
  const uris: string[] = [];
  if (subjectAltName === undefined || subjectAltName === "") return uris;
  let at = 0;
  while (at < subjectAltName.length) {
    const colon = subjectAltName.indexOf(":", at);
    if (colon === -1) break;
    const type = subjectAltName.slice(at, colon);
    let value: string;
    let next: number;
    if (subjectAltName[colon + 1] === '"') {
      let end = colon + 2;
      while (end < subjectAltName.length && subjectAltName[end] !== '"') {
        end += subjectAltName[end] === "\\" ? 2 : 1;
      }
      value = JSON.parse(subjectAltName.slice(colon + 1, end + 1)) as string;
      next = end + 1;
    } else {
      const comma = subjectAltName.indexOf(", ", colon + 1);
      next = comma === -1 ? subjectAltName.length : comma;
      value = subjectAltName.slice(colon + 1, next);
    }
    if (type === "URI") uris.push(value);
    at = subjectAltName.startsWith(", ", next) ? next + 2 : subjectAltName.length;
  }
  return uris;
}

/**
 * The SPIFFE URI SANs of a certificate (PEM, DER or parsed), exactly as written in it, in order;
 * other URI SANs and DNS names are left out. An X509-SVID carries exactly one (SPIFFE X509-SVID
 * §2), but a peer check should look at all of them rather than trust the first.
 */
export function identityOfCertificate(certificate: string | Buffer | X509Certificate): string[] {
  const x509 =
    certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate);
  return uriSansOf(x509.subjectAltName).filter((uri) => uri.startsWith(SCHEME));
}
