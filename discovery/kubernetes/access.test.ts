import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { inClusterAccess, KubeAccessError, kubeconfigAccess, resolveAccess } from "./access.js";

let dirs: string[] = [];
function dir(): string {
  const path = mkdtempSync(join(tmpdir(), "remora-kube-"));
  dirs.push(path);
  return path;
}
afterEach(() => {
  for (const path of dirs) rmSync(path, { recursive: true, force: true });
  dirs = [];
});

const b64 = (text: string) => Buffer.from(text).toString("base64");

function kubeconfig(user: object, extra: { cluster?: object; context?: object } = {}): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    "current-context": "dev",
    clusters: [
      { name: "other", cluster: { server: "https://wrong:1" } },
      { name: "kind", cluster: { server: "https://127.0.0.1:6443/", ...extra.cluster } },
    ],
    contexts: [
      { name: "prod", context: { cluster: "other", user: "u" } },
      {
        name: "dev",
        context: { cluster: "kind", user: "me", namespace: "shop", ...extra.context },
      },
    ],
    users: [{ name: "me", user }],
  });
}

describe("kubeconfigAccess", () => {
  it("follows current-context to its cluster, user and namespace; -data fields are base64", async () => {
    const d = dir();
    const path = join(d, "config");
    writeFileSync(
      path,
      kubeconfig(
        { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
        { cluster: { "certificate-authority-data": b64("CA") } },
      ),
    );
    const access = await kubeconfigAccess(path);
    expect(access).toMatchObject({
      server: "https://127.0.0.1:6443",
      ca: "CA",
      cert: "CERT",
      key: "KEY",
      insecureSkipTlsVerify: false,
      namespace: "shop",
    });
    expect(await access.token()).toBeUndefined();
  });

  it("reads file paths relative to the kubeconfig, a static token, insecure-skip-tls-verify", async () => {
    const d = dir();
    writeFileSync(join(d, "ca.pem"), "CA-FILE");
    writeFileSync(
      join(d, "config"),
      kubeconfig(
        { token: "abc" },
        { cluster: { "certificate-authority": "ca.pem", "insecure-skip-tls-verify": true } },
      ),
    );
    const access = await kubeconfigAccess(join(d, "config"));
    expect(access.ca).toBe("CA-FILE");
    expect(access.insecureSkipTlsVerify).toBe(true);
    expect(await access.token()).toBe("abc");
  });

  it("refuses exec credential plugins and auth providers with a message that says so", async () => {
    const d = dir();
    writeFileSync(
      join(d, "config"),
      kubeconfig({ exec: { command: "aws", args: ["eks", "get-token"] } }),
    );
    await expect(kubeconfigAccess(join(d, "config"))).rejects.toThrow(
      /exec credential plugin \(aws\), which remora does not run/,
    );
    writeFileSync(join(d, "config"), kubeconfig({ "auth-provider": { name: "gcp" } }));
    await expect(kubeconfigAccess(join(d, "config"))).rejects.toThrow(KubeAccessError);
  });

  it("names what is missing: context, server, a half client-certificate pair", async () => {
    const d = dir();
    const path = join(d, "config");
    writeFileSync(path, kubeconfig({}, { context: { cluster: "nope" } }));
    await expect(kubeconfigAccess(path)).rejects.toThrow(/no cluster named "nope"/);
    writeFileSync(path, kubeconfig({ "client-certificate-data": b64("C") }));
    await expect(kubeconfigAccess(path)).rejects.toThrow(
      /client-certificate and client-key go together/,
    );
    writeFileSync(path, "apiVersion: v1\nkind: Config\n");
    await expect(kubeconfigAccess(path)).rejects.toThrow(/no current-context/);
  });
});

describe("inClusterAccess", () => {
  it("is undefined outside a pod", () => {
    expect(inClusterAccess({ env: {} })).toBeUndefined();
  });

  it("uses the service env and files, and re-reads the token after a minute or a 401, not before", async () => {
    const d = dir();
    writeFileSync(join(d, "ca.crt"), "CA");
    writeFileSync(join(d, "namespace"), "shop\n");
    writeFileSync(join(d, "token"), "one\n");
    let now = 0;
    const access = inClusterAccess({
      env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" },
      dir: d,
      now: () => now,
    });
    expect(access).toMatchObject({ server: "https://[fd00::1]:443", ca: "CA", namespace: "shop" });
    expect(await access?.token()).toBe("one");
    writeFileSync(join(d, "token"), "two");
    now = 59_999;
    expect(await access?.token()).toBe("one");
    now = 60_000;
    expect(await access?.token()).toBe("two");
    writeFileSync(join(d, "token"), "three");
    now = 60_001;
    expect(await access?.token()).toBe("two");
    access?.tokenRejected();
    expect(await access?.token()).toBe("three");
  });

  it("a token file gone during a rotation keeps the last token", async () => {
    const d = dir();
    writeFileSync(join(d, "ca.crt"), "CA");
    writeFileSync(join(d, "token"), "one");
    const access = inClusterAccess({ env: { KUBERNETES_SERVICE_HOST: "10.0.0.1" }, dir: d });
    expect(await access?.token()).toBe("one");
    rmSync(join(d, "token"));
    access?.tokenRejected();
    expect(await access?.token()).toBe("one");
  });
});

describe("resolveAccess", () => {
  it("prefers the configured kubeconfig, then in-cluster, then $KUBECONFIG's first path", async () => {
    const d = dir();
    writeFileSync(join(d, "config"), kubeconfig({ token: "t" }));
    expect(
      (await resolveAccess(undefined, { KUBECONFIG: `${join(d, "config")}:/nope` })).origin,
    ).toContain(join(d, "config"));
    await expect(resolveAccess(undefined, {})).rejects.toThrow(/no Kubernetes access/);
  });
});
