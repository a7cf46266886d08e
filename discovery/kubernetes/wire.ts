/**
 * The parts of the Kubernetes API's JSON that discovery reads, as the API server sends them
 * (k8s.io/api discovery/v1 and core/v1, apimachinery meta/v1). Every field is optional here
 * because the server omits empty ones (`endpoints: null` and missing conditions are valid).
 */

export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>> | null;
}

/** metav1.ListMeta: `continue` is set while more pages follow. */
export interface ListMeta {
  readonly resourceVersion?: string;
  readonly continue?: string;
}

export interface KubeObject {
  readonly kind?: string;
  readonly apiVersion?: string;
  readonly metadata?: ObjectMeta;
}

export interface KubeList<T extends KubeObject> {
  readonly kind?: string;
  readonly apiVersion?: string;
  readonly metadata?: ListMeta;
  readonly items?: readonly T[] | null;
}

/** metav1.Status, the body of an error answer and the object of an ERROR watch event. */
export interface KubeStatus {
  readonly kind?: "Status";
  readonly status?: string;
  readonly message?: string;
  /** e.g. `Expired`, `Gone`, `Forbidden`, `TooManyRequests`. */
  readonly reason?: string;
  readonly code?: number;
}

/** metav1.WatchEvent: one line of a watch stream. */
export interface WatchEvent {
  readonly type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  readonly object: KubeObject & KubeStatus;
}

/** discovery/v1 EndpointConditions: nil `ready` and `serving` mean true, nil `terminating` false. */
export interface EndpointConditions {
  readonly ready?: boolean | null;
  readonly serving?: boolean | null;
  readonly terminating?: boolean | null;
}

export interface ObjectReference {
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly uid?: string;
}

export interface SliceEndpoint {
  readonly addresses?: readonly string[] | null;
  readonly conditions?: EndpointConditions | null;
  readonly hostname?: string;
  readonly targetRef?: ObjectReference | null;
  readonly nodeName?: string;
  readonly zone?: string;
}

/** discovery/v1 EndpointPort: `port` nil means "all ports" (not used by Services with ports). */
export interface SlicePort {
  readonly name?: string | null;
  readonly protocol?: string | null;
  readonly port?: number | null;
  readonly appProtocol?: string | null;
}

export interface EndpointSlice extends KubeObject {
  /** `IPv4`, `IPv6` or `FQDN`. */
  readonly addressType?: string;
  readonly endpoints?: readonly SliceEndpoint[] | null;
  readonly ports?: readonly SlicePort[] | null;
}

export interface ServicePort {
  readonly name?: string;
  readonly protocol?: string;
  readonly port: number;
  readonly targetPort?: number | string;
}

export interface Service extends KubeObject {
  readonly spec?: {
    readonly type?: string;
    readonly clusterIP?: string;
    readonly clusterIPs?: readonly string[] | null;
    readonly externalName?: string;
    readonly ports?: readonly ServicePort[] | null;
  };
}

/** The label an EndpointSlice carries naming its Service. */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
