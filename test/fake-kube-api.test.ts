/**
 * The fake API server checked against a client nobody here wrote: Debian's kubectl
 * (kubernetes-client). If kubectl reads its lists and watches, remora's reflector is tested
 * against the real wire format, not against our own reading of it.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FakeKubeApi,
  serviceObject,
  sliceObject,
} from "../discovery/kubernetes/testing/fake-api.js";

const run = promisify(execFile);
/** Debian's kubernetes-client (1.20) in CI; REMORA_KUBECTL picks another build. */
const KUBECTL = process.env.REMORA_KUBECTL ?? "kubectl";
let api: FakeKubeApi;
let dir: string;
let kubeconfig: string;

beforeAll(async () => {
  api = new FakeKubeApi();
  await api.start();
  dir = mkdtempSync(join(tmpdir(), "remora-kubectl-"));
  kubeconfig = join(dir, "config");
  api.writeKubeconfig(kubeconfig);
  for (let i = 0; i < 7; i++) {
    api.put(
      "services",
      serviceObject(
        `svc-${i}`,
        "default",
        [{ name: "http", port: 80, targetPort: 8080 }],
        `10.96.0.${i + 1}`,
      ),
    );
  }
  api.put(
    "endpointslices",
    sliceObject("svc-0-abc", "default", "svc-0", [{ ip: "10.0.0.1" }], {
      name: "http",
      port: 8080,
    }),
  );
});

afterAll(async () => {
  await api.stop();
  rmSync(dir, { recursive: true, force: true });
});

function kubectl(...args: string[]) {
  return run(KUBECTL, ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args], {
    timeout: 30_000,
  });
}

describe("fake Kubernetes API against kubectl", () => {
  it("kubectl get services -o json reads every page of the list", async () => {
    const { stdout } = await kubectl("get", "services", "-o", "json", "--chunk-size=3");
    const list = JSON.parse(stdout);
    expect(list.items.map((s: { metadata: { name: string } }) => s.metadata.name)).toEqual(
      Array.from({ length: 7 }, (_, i) => `svc-${i}`),
    );
    expect(list.items[0].spec.clusterIP).toBe("10.96.0.1");
    // kubectl sent the token and paged with limit/continue.
    const pages = api.requests.filter((r) => r.path === "/api/v1/namespaces/default/services");
    expect(pages.map((r) => r.query.limit)).toEqual(["3", "3", "3"]);
    expect(pages.filter((r) => r.query.continue !== undefined)).toHaveLength(2);
    expect(pages.every((r) => r.authorization === `Bearer ${api.token}`)).toBe(true);
  });

  it("kubectl get endpointslices -w prints the list, then each watch event cut at arbitrary bytes", async () => {
    const child: ChildProcess = spawn(
      KUBECTL,
      [
        "--kubeconfig",
        kubeconfig,
        "--cache-dir",
        join(dir, "cache"),
        "get",
        "endpointslices",
        "-w",
        "-o",
        "name",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout?.on("data", (chunk) => (out += chunk));
    child.stderr?.on("data", (chunk) => (err += chunk));
    const until = async (text: string) => {
      for (let i = 0; i < 300 && !out.includes(text); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(out, err).toContain(text);
    };
    try {
      await until("endpointslice.discovery.k8s.io/svc-0-abc");
      for (let i = 0; i < 100 && api.watchCount === 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      api.bookmark();
      api.put(
        "endpointslices",
        sliceObject("svc-1-xyz", "default", "svc-1", [{ ip: "10.0.0.2" }], {
          name: "http",
          port: 8080,
        }),
      );
      await until("endpointslice.discovery.k8s.io/svc-1-xyz");
      const watch = api.requests.find((r) => r.query.watch === "true");
      expect(watch?.path).toBe("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices");
      expect(Number(watch?.query.resourceVersion)).toBeGreaterThan(0);
    } finally {
      child.kill();
    }
  });

  it("kubectl reports the API server's 403 Status message", async () => {
    api.fail({ status: 403 });
    await expect(kubectl("get", "services", "-o", "json")).rejects.toThrow(
      /forbidden: User "system:serviceaccount:default:remora" cannot list/,
    );
  });

  it("kubectl is refused with a stale token (401)", async () => {
    const old = api.token;
    api.rotateToken();
    await expect(kubectl("get", "services", "-o", "json")).rejects.toThrow(
      /Unauthorized|provide credentials/,
    );
    api.rotateToken(old);
  });
});
