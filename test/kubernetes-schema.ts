/**
 * Checks objects against the Kubernetes API schema with kubernetes-models (the official OpenAPI
 * models): unknown field types, missing required fields and bad enums fail `validate()`.
 */
import { MutatingWebhookConfiguration } from "kubernetes-models/admissionregistration.k8s.io/v1";
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from "kubernetes-models/apps/v1";
import { CronJob, Job } from "kubernetes-models/batch/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount } from "kubernetes-models/v1";

// biome-ignore lint/suspicious/noExplicitAny: the models' constructors take their own shapes.
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "v1/Pod": Pod,
  "v1/ConfigMap": ConfigMap,
  "v1/Namespace": Namespace,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "apps/v1/DaemonSet": DaemonSet,
  "apps/v1/ReplicaSet": ReplicaSet,
  "batch/v1/Job": Job,
  "batch/v1/CronJob": CronJob,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration": MutatingWebhookConfiguration,
};

/** Throws (with the schema's message) unless `object` is a valid object of a known kind. */
export function validateKubernetesObject(object: unknown): void {
  const { apiVersion, kind } = object as { apiVersion?: string; kind?: string };
  const Model = MODELS[`${apiVersion}/${kind}`];
  if (Model === undefined) throw new Error(`no model for ${apiVersion} ${kind}`);
  new Model(object).validate();
}
