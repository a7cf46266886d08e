/**
 * Where dev mode (`tls: { dev: true }`, `remora run --dev-mtls`) keeps its CA and workload
 * certificates. Paths only, no I/O and no node-forge: the config schema computes the files a dev
 * identity will use from here, and tls/dev-identity.ts writes them.
 *
 * Layout under the state directory:
 *   dev-mtls/ca/ca.crt, ca.key                        the local CA (`remora ca init`'s files)
 *   dev-mtls/workloads/<ns>/<sa>/tls.crt, tls.key, ca.crt
 *                                                     a Kubernetes TLS Secret's file names
 */
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";

/** Who a dev identity is and where its files live (the config's `tls` in dev mode). */
export interface DevIdentitySettings {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly trustDomain: string;
  readonly stateDir: string;
}

export interface DevIdentityPaths {
  /** `<state>/dev-mtls/ca`: created whole (with both files) or not at all. */
  readonly caDir: string;
  readonly caCert: string;
  readonly caKey: string;
  /** `<state>/dev-mtls/workloads/<ns>/<sa>`. */
  readonly workloadDir: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The trust bundle beside the certificate: a copy of the CA certificate. */
  readonly caFile: string;
}

/**
 * `$REMORA_STATE_DIR`, else `$XDG_STATE_HOME/remora`, else `~/.local/state/remora` (the XDG base
 * directory spec's state home: data that should survive a restart but is not worth a backup).
 * The spec says a relative `XDG_STATE_HOME` is invalid and must be ignored; a relative
 * `REMORA_STATE_DIR` is taken against the working directory.
 */
export function defaultStateDir(
  env: NodeJS.ProcessEnv = process.env,
  home: () => string = homedir,
): string {
  const own = env.REMORA_STATE_DIR;
  if (own !== undefined && own !== "") return resolve(own);
  const xdg = env.XDG_STATE_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, "remora");
  return join(home(), ".local", "state", "remora");
}

export function devIdentityPaths(
  stateDir: string,
  namespace: string,
  serviceAccount: string,
): DevIdentityPaths {
  const root = join(stateDir, "dev-mtls");
  const caDir = join(root, "ca");
  const workloadDir = join(root, "workloads", namespace, serviceAccount);
  return {
    caDir,
    caCert: join(caDir, "ca.crt"),
    caKey: join(caDir, "ca.key"),
    workloadDir,
    certFile: join(workloadDir, "tls.crt"),
    keyFile: join(workloadDir, "tls.key"),
    caFile: join(workloadDir, "ca.crt"),
  };
}
