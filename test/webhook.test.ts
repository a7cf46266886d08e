/**
 * `remora webhook` as the API server meets it: a real process over HTTPS, with the serving
 * certificate `remora manifests` makes (verified against its caBundle under the Service's DNS
 * name), answering an AdmissionReview v1 with a patch that turns the pod into exactly what the
 * `remora inject` command prints for it. And `remora inject` itself as a user runs it.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { webhookCertificate } from "../deploy/manifests.js";
import { CLI } from "./harness.js";
import { applyPatch } from "./json-patch-apply.js";
import { validateKubernetesObject } from "./kubernetes-schema.js";

const REVIEW = JSON.parse(
  readFileSync(new URL("./fixtures/admission-review-pod.json", import.meta.url), "utf8"),
);
const IMAGES = ["--image", "remora:test", "--init-image", "remora-init:test"];
const SERVER_NAME = "remora-webhook.remora-system.svc";

function run(
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
    child.stdin!.end(input ?? "");
  });
}

let dir: string;
let caPem: string;
let webhook: ChildProcess;
let port: number;
let stderr = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "remora-webhook-"));
  const cert = webhookCertificate("remora-system");
  caPem = cert.caPem;
  await writeFile(join(dir, "tls.crt"), cert.certPem);
  await writeFile(join(dir, "tls.key"), cert.keyPem);
  webhook = spawn(
    process.execPath,
    [
      CLI,
      "webhook",
      "--cert",
      join(dir, "tls.crt"),
      "--key",
      join(dir, "tls.key"),
      "--port",
      "0",
      "--address",
      "127.0.0.1",
      "--native-sidecar=false",
      ...IMAGES,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  port = await new Promise<number>((resolve, reject) => {
    webhook.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const line = stderr.split("\n").find((l) => l.includes('"webhook listening"'));
      if (line !== undefined) resolve(JSON.parse(line).port);
    });
    webhook.once("exit", (code) => reject(new Error(`webhook exited ${code}: ${stderr}`)));
  });
});

afterAll(async () => {
  if (webhook.exitCode === null) {
    webhook.kill("SIGTERM");
    await once(webhook, "exit");
  }
});

/** An HTTPS call that verifies the webhook's certificate as the API server does. */
function call(
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        ca: caPem,
        servername: SERVER_NAME,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const review = (mutate: (r: typeof REVIEW) => void = () => {}) => {
  const copy = structuredClone(REVIEW);
  mutate(copy);
  return copy;
};

describe("remora webhook", () => {
  it("answers a pod's review with a patch that makes it what remora inject prints", async () => {
    const res = await call("POST", "/inject", JSON.stringify(REVIEW));
    expect(res.status).toBe(200);
    const answer = JSON.parse(res.text);
    expect(answer.apiVersion).toBe("admission.k8s.io/v1");
    expect(answer.kind).toBe("AdmissionReview");
    expect(answer.response.uid).toBe(REVIEW.request.uid);
    expect(answer.response.allowed).toBe(true);
    expect(answer.response.patchType).toBe("JSONPatch");
    const patch = JSON.parse(Buffer.from(answer.response.patch, "base64").toString("utf8"));
    const patched = applyPatch(REVIEW.request.object, patch);

    const cli = await run(
      ["inject", "-f", "-", "--native-sidecar=false", ...IMAGES],
      stringify(REVIEW.request.object),
    );
    expect(cli.code).toBe(0);
    expect(patched).toEqual(parse(cli.stdout));
    validateKubernetesObject(patched);
    const spec = (patched as { spec: { containers: { name: string }[] } }).spec;
    expect(spec.containers.map((c) => c.name)).toEqual(["remora-proxy", "web"]);
  });

  it("admits opted-out pods and non-pod reviews unchanged", async () => {
    const optedOut = review((r) => {
      r.request.object.metadata.annotations = { "sidecar.istio.io/inject": "false" };
    });
    const a = JSON.parse((await call("POST", "/inject", JSON.stringify(optedOut))).text);
    expect(a.response).toEqual({ uid: REVIEW.request.uid, allowed: true });
    const update = review((r) => {
      r.request.operation = "UPDATE";
    });
    expect(
      JSON.parse((await call("POST", "/inject", JSON.stringify(update))).text).response,
    ).toEqual({
      uid: REVIEW.request.uid,
      allowed: true,
    });
  });

  it("fails open on a pod it cannot inject, with a warning, logged and counted", async () => {
    const bad = review((r) => {
      r.request.uid = "bad-annotation";
      r.request.object.metadata.annotations = { "sidecar.remora.dev/proxyMemory": "lots" };
    });
    const answer = JSON.parse((await call("POST", "/inject", JSON.stringify(bad))).text);
    expect(answer.response).toEqual({
      uid: "bad-annotation",
      allowed: true,
      warnings: [
        'remora: Pod shop/web-7d9c6b5f4d-: not injected: Pod shop/web-7d9c6b5f4d-: annotation sidecar.remora.dev/proxyMemory: "lots" is not a Kubernetes quantity (e.g. 100m, 128Mi)',
      ],
    });
    const noSpec = review((r) => {
      r.request.uid = "no-spec";
      r.request.object.spec = "garbage";
    });
    const second = JSON.parse((await call("POST", "/inject", JSON.stringify(noSpec))).text);
    expect(second.response.allowed).toBe(true);
    expect(second.response.patch).toBeUndefined();
    expect(second.response.warnings[0]).toContain("not a pod with spec.containers");

    // Not an AdmissionReview at all: nothing to answer, 400 (failurePolicy Ignore admits the pod).
    const garbage = await call("POST", "/inject", "{not json");
    expect(garbage.status).toBe(400);
    expect(garbage.text).toMatch(/^body is not JSON/);
    const v1beta1 = await call(
      "POST",
      "/inject",
      JSON.stringify({ ...REVIEW, apiVersion: "admission.k8s.io/v1beta1" }),
    );
    expect(v1beta1.status).toBe(400);

    const metrics = await call("GET", "/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/remora_webhook_reviews_total\{outcome="failed_open"\} 2\n/);
    expect(metrics.text).toMatch(/remora_webhook_reviews_total\{outcome="rejected"\} 2\n/);
    expect(metrics.text).toMatch(/remora_webhook_reviews_total\{outcome="injected"\} [1-9]/);
    // The log lines reach this process's pipe on their own time, not with the answers.
    const warnedLines = () =>
      stderr.split("\n").filter((l) => l.includes('"admitted without injection"'));
    for (
      let i = 0;
      i < 100 && (warnedLines().length < 2 || !stderr.includes('"bad admission review"'));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(warnedLines().map((l) => JSON.parse(l).uid)).toEqual(["bad-annotation", "no-spec"]);
    expect(stderr).toContain('"bad admission review"');
  });

  it("serves /healthz for its probes and nothing but /inject otherwise", async () => {
    expect((await call("GET", "/healthz")).status).toBe(200);
    expect((await call("GET", "/")).status).toBe(404);
    expect((await call("GET", "/inject")).status).toBe(405);
  });
});

describe("remora inject (the command)", () => {
  it("reads a file, writes -o, and warns on stderr", async () => {
    const out = join(dir, "out.yaml");
    const input = join(dir, "in.yaml");
    await writeFile(
      input,
      `apiVersion: v1
kind: Pod
metadata: {name: node-agent}
spec:
  hostNetwork: true
  containers: [{name: a, image: a}]
---
${readFileSync(new URL("../deploy/testdata/job.yaml", import.meta.url), "utf8")}`,
    );
    const res = await run([
      "inject",
      "-f",
      input,
      "-o",
      out,
      "--kubernetes-version",
      "1.28",
      ...IMAGES,
    ]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("");
    expect(res.stderr).toBe(
      "warning: Pod default/node-agent: hostNetwork pod skipped: its traffic is the node's, which iptables must not capture\n" +
        "warning: Job default/report: with --native-sidecar=false the proxy container never exits, so the Job never completes\n",
    );
    expect(await readFile(out, "utf8")).toContain("name: remora-proxy");
  });

  it("refuses bad flags with exit 2 and a usage hint", async () => {
    const res = await run(["inject", "-f", "-", "--native-sidecar=sometimes"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(
      'remora: --native-sidecar: expected auto, true or false, got "sometimes"\nRun "remora inject --help" for usage.\n',
    );
    expect((await run(["inject"])).stderr).toMatch(/inject needs -f FILE/);
    const help = await run(["help", "inject"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage:\n {2}remora inject -f FILE\|-/);
  });

  it("exits 1 naming the document that is not YAML", async () => {
    const res = await run(["inject", "-f", "-"], "a: 1\n---\nb: [\n");
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^remora: stdin: document 2: /);
  });
});
