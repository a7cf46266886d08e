/**
 * Test certificates with chosen validity windows (openssl 3.0's `x509 -req` cannot backdate),
 * minted with node-forge; keys come from node:crypto, which is much faster than forge's RSA.
 */
import { generateKeyPairSync } from "node:crypto";
import forge from "node-forge";

export interface Minted {
  readonly certPem: string;
  readonly keyPem: string;
  /** Hex, upper case, as node reports it. */
  readonly serial: string;
}

export interface MintOptions {
  readonly commonName?: string;
  /** Epoch ms; default an hour ago. */
  readonly notBefore?: number;
  /** Epoch ms; default a day from now. */
  readonly notAfter?: number;
  /** URI SANs, e.g. `spiffe://cluster.local/ns/default/sa/web`. */
  readonly uris?: readonly string[];
  /** IP address SANs, e.g. `127.0.0.1` for a server tests reach by address. */
  readonly ips?: readonly string[];
  /** Signs with this CA; self-signed CA when absent. */
  readonly issuer?: Minted;
  /** A CA certificate (default: only when self-signed). */
  readonly ca?: boolean;
  /** Use this key instead of a fresh one. */
  readonly keyPem?: string;
}

let nextSerial = 0x1000;

function rsaKeyPem(): string {
  return generateKeyPairSync("rsa", { modulusLength: 2048 })
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();
}

export function mint(options: MintOptions = {}): Minted {
  const keyPem = options.keyPem ?? rsaKeyPem();
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  const serial = (nextSerial++).toString(16).toUpperCase().padStart(4, "0");
  cert.serialNumber = `7F${serial}`; // a leading byte < 0x80 keeps the DER integer positive
  cert.validity.notBefore = new Date(options.notBefore ?? Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(options.notAfter ?? Date.now() + 86_400_000);
  const isCa = options.ca ?? options.issuer === undefined;
  const commonName = options.commonName ?? (isCa ? "test CA" : "leaf");
  cert.setSubject([{ name: "commonName", value: commonName }]);
  const issuerCert = options.issuer ? forge.pki.certificateFromPem(options.issuer.certPem) : cert;
  cert.setIssuer(issuerCert.subject.attributes);
  const extensions: object[] = [{ name: "basicConstraints", cA: isCa, critical: true }];
  if (isCa) extensions.push({ name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true });
  else extensions.push({ name: "keyUsage", digitalSignature: true, keyEncipherment: true });
  const altNames = [
    ...(options.uris ?? []).map((value) => ({ type: 6, value })),
    ...(options.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  if (altNames.length > 0) extensions.push({ name: "subjectAltName", altNames });
  cert.setExtensions(extensions);
  const signer = options.issuer
    ? (forge.pki.privateKeyFromPem(options.issuer.keyPem) as forge.pki.rsa.PrivateKey)
    : key;
  cert.sign(signer, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, serial: `7F${serial}` };
}
