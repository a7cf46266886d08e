/**
 * The `when` keys remora supports (Istio's "Authorization Policy Conditions" page) and what each
 * one reads from the request. JWT keys (`request.auth.*`) need RequestAuthentication, which
 * remora does not have: the config refuses them rather than let a rule silently never match.
 */

export type ConditionKind =
  | "header"
  | "source.ip"
  | "remote.ip"
  | "destination.ip"
  | "destination.port"
  | "source.namespace"
  | "source.principal"
  | "connection.sni";

/** The keys, as a config error lists them. */
export const CONDITION_KEYS: readonly string[] = [
  "request.headers[NAME]",
  "source.ip",
  "remote.ip",
  "source.namespace",
  "source.principal",
  "destination.ip",
  "destination.port",
  "connection.sni",
];

const PLAIN_KEYS: ReadonlySet<string> = new Set(CONDITION_KEYS.slice(1));
const HEADER = /^request\.headers\[([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\]$/;

export type ParsedCondition =
  | { readonly kind: ConditionKind; readonly header: string }
  | { readonly kind: undefined; readonly problem: string };

/** `header`: the lower-cased field name for `request.headers[...]`, else "". */
export function parseConditionKey(key: string): ParsedCondition {
  const header = HEADER.exec(key);
  if (header !== null) return { kind: "header", header: header[1]!.toLowerCase() };
  if (PLAIN_KEYS.has(key)) return { kind: key as ConditionKind, header: "" };
  if (key.startsWith("request.auth.")) {
    return {
      kind: undefined,
      problem: `${key} needs JWT request authentication, which remora does not support; supported keys: ${CONDITION_KEYS.join(", ")}`,
    };
  }
  return {
    kind: undefined,
    problem: `unsupported key ${JSON.stringify(key)}; supported keys: ${CONDITION_KEYS.join(", ")}`,
  };
}

/** IP-valued keys take IP blocks; destination.port takes ports; the rest Istio string matches. */
export function conditionValueKind(kind: ConditionKind): "ip" | "port" | "string" {
  if (kind === "source.ip" || kind === "remote.ip" || kind === "destination.ip") return "ip";
  if (kind === "destination.port") return "port";
  return "string";
}

/**
 * The value of header `name` (lower-case) in flat `[name, value, ...]` fields: undefined when
 * absent; several fields are joined with "," as Envoy's header matcher sees them.
 */
export function headerValue(headers: readonly string[], name: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const field = headers[i]!;
    if (field.length !== name.length || field.toLowerCase() !== name) continue;
    found = found === undefined ? headers[i + 1]! : `${found},${headers[i + 1]!}`;
  }
  return found;
}
