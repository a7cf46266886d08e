/**
 * `remora manifests`: every object a cluster needs for injection, as one YAML stream. The
 * webhook's serving certificate is made fresh per run by the CA tool (tls/ca.ts): a throwaway CA
 * whose certificate becomes the caBundle and whose key is discarded, and a certificate for the
 * Service's DNS names. deploy/remora.yaml is this output (docs/deploy.md says how it is made).
 */
import { Document } from "yaml";
import { createCa, issueWorkloadCertificate } from "../tls/ca.js";
import type { JsonObject } from "./inject.js";
import { PROXY_UID } from "./sidecar-template.js";

export const WEBHOOK_NAME = "remora-webhook";
export const WEBHOOK_TLS_SECRET = "remora-webhook-tls";
export const WEBHOOK_PORT = 9443;
/** The namespace label that turns injection on (the webhook's namespaceSelector). */
export const INJECTION_LABEL = "remora-injection";
export const DEFAULT_CERT_TTL_MS = 365 * 86_400_000;
/** The throwaway CA's trust domain: not the mesh's, so it can never mint mesh identities. */
const WEBHOOK_CA_TRUST_DOMAIN = "remora-webhook.local";
const CERT_DIR = "/etc/remora/webhook";

/** Kept equal to deploy/rbac.yaml's ClusterRole (a test checks it). */
export const DISCOVERY_RULES = [
  { apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch"] },
  {
    apiGroups: ["discovery.k8s.io"],
    resources: ["endpointslices"],
    verbs: ["get", "list", "watch"],
  },
];

export interface ManifestOptions {
  readonly namespace: string;
  readonly image: string;
  readonly initImage: string;
  readonly certTtlMs?: number;
}

export interface WebhookCertificate {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** A serving certificate for the webhook Service, from a new CA. */
export function webhookCertificate(
  namespace: string,
  ttlMs = DEFAULT_CERT_TTL_MS,
): WebhookCertificate {
  const ca = createCa({ trustDomain: WEBHOOK_CA_TRUST_DOMAIN, ttlMs: ttlMs + 86_400_000 });
  const issued = issueWorkloadCertificate({
    ca,
    namespace,
    serviceAccount: WEBHOOK_NAME,
    ttlMs,
    // The API server calls https://remora-webhook.<ns>.svc:443/inject.
    dnsNames: [
      `${WEBHOOK_NAME}.${namespace}.svc`,
      `${WEBHOOK_NAME}.${namespace}.svc.cluster.local`,
      `${WEBHOOK_NAME}.${namespace}`,
    ],
  });
  return { caPem: ca.certPem, certPem: issued.certPem, keyPem: issued.keyPem };
}

/** The objects, in the order kubectl should create them. */
export function buildManifests(
  options: ManifestOptions,
  certificate: WebhookCertificate,
): JsonObject[] {
  const { namespace } = options;
  const labels = { "app.kubernetes.io/name": WEBHOOK_NAME, "app.kubernetes.io/part-of": "remora" };
  const metadata = (name: string, namespaced = true): JsonObject => ({
    name,
    ...(namespaced ? { namespace } : {}),
    labels,
  });
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: namespace, labels: { "app.kubernetes.io/part-of": "remora" } },
    },
    // The webhook calls no API: its token is not mounted.
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(WEBHOOK_NAME),
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "remora-discovery", labels: { "app.kubernetes.io/part-of": "remora" } },
      rules: DISCOVERY_RULES,
    },
    {
      // Injected sidecars run as their pod's service account, in any namespace: all of them may
      // read Services and EndpointSlices (docs/deploy.md shows the per-namespace alternative).
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: {
        name: "remora-discovery-sidecars",
        labels: { "app.kubernetes.io/part-of": "remora" },
      },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: "remora-discovery",
      },
      subjects: [
        { apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "system:serviceaccounts" },
      ],
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: metadata(WEBHOOK_TLS_SECRET),
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": certificate.certPem, "tls.key": certificate.keyPem },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: metadata(WEBHOOK_NAME),
      spec: {
        selector: { "app.kubernetes.io/name": WEBHOOK_NAME },
        ports: [{ name: "https-webhook", port: 443, targetPort: WEBHOOK_PORT, protocol: "TCP" }],
      },
    },
    webhookDeployment(options, labels, metadata(WEBHOOK_NAME)),
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name: "remora-sidecar-injector", labels },
      webhooks: [
        {
          name: "sidecar-injector.remora.dev",
          admissionReviewVersions: ["v1"],
          clientConfig: {
            service: { name: WEBHOOK_NAME, namespace, path: "/inject", port: 443 },
            caBundle: Buffer.from(certificate.caPem).toString("base64"),
          },
          rules: [
            {
              operations: ["CREATE"],
              apiGroups: [""],
              apiVersions: ["v1"],
              resources: ["pods"],
              scope: "Namespaced",
            },
          ],
          namespaceSelector: { matchLabels: { [INJECTION_LABEL]: "enabled" } },
          // A webhook that is down must not stop pods from starting: they start without a sidecar.
          failurePolicy: "Ignore",
          sideEffects: "None",
          timeoutSeconds: 10,
          reinvocationPolicy: "Never",
        },
      ],
    },
  ];
}

function webhookDeployment(
  options: ManifestOptions,
  labels: JsonObject,
  metadata: JsonObject,
): JsonObject {
  const probe = { httpGet: { path: "/healthz", port: WEBHOOK_PORT, scheme: "HTTPS" } };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata,
    spec: {
      replicas: 1,
      selector: { matchLabels: { "app.kubernetes.io/name": WEBHOOK_NAME } },
      template: {
        metadata: {
          labels,
          // Never inject the injector.
          annotations: { "sidecar.remora.dev/inject": "false" },
        },
        spec: {
          serviceAccountName: WEBHOOK_NAME,
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "webhook",
              image: options.image,
              args: [
                "webhook",
                "--cert",
                `${CERT_DIR}/tls.crt`,
                "--key",
                `${CERT_DIR}/tls.key`,
                "--port",
                String(WEBHOOK_PORT),
                "--image",
                options.image,
                "--init-image",
                options.initImage,
              ],
              ports: [{ name: "https-webhook", containerPort: WEBHOOK_PORT, protocol: "TCP" }],
              readinessProbe: { ...probe, periodSeconds: 5 },
              livenessProbe: { ...probe, periodSeconds: 10 },
              resources: {
                requests: { cpu: "50m", memory: "64Mi" },
                limits: { cpu: "500m", memory: "256Mi" },
              },
              securityContext: {
                runAsUser: PROXY_UID,
                runAsGroup: PROXY_UID,
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [{ name: "tls", mountPath: CERT_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: "tls", secret: { secretName: WEBHOOK_TLS_SECRET } }],
        },
      },
    },
  };
}

export const MANIFESTS_HEADER = `# Generated by "remora manifests" (docs/deploy.md). Apply: kubectl apply -f THIS_FILE
# Turn injection on for a namespace: kubectl label namespace NS ${INJECTION_LABEL}=enabled
`;

export async function renderManifests(options: ManifestOptions): Promise<string> {
  const certificate = webhookCertificate(options.namespace, options.certTtlMs);
  return toYaml(buildManifests(options, certificate), MANIFESTS_HEADER);
}

export function toYaml(objects: readonly JsonObject[], header = ""): string {
  return (
    header +
    objects
      .map((o) => new Document(o, { aliasDuplicateObjects: false }).toString({ lineWidth: 0 }))
      .join("---\n")
  );
}
