/**
 * Interception for real, in network namespaces this test creates (issue 13): a "pod" namespace
 * with the app, remora as UID 1337 and the rules `remora iptables` installs, and a "peer"
 * namespace with a mesh service's backend, joined by a veth pair addressed from 198.18.0.0/15 (the
 * range set aside for network tests). Needs root, `ip`, `nsenter` and iptables (Debian's
 * `iptables` package: the nf_tables backend); skipped with the reason otherwise.
 *
 * Every process in a namespace is started with nsenter (remora with -S/-G 1337, so it enters the
 * namespace as root and then drops to the proxy's user); the app's client runs with
 * `ip netns exec`, which mounts /etc/netns/<pod>/hosts over /etc/hosts: that is how `hello`
 * resolves for it (to the peer's address, port 80, where nothing listens: only capture makes the
 * request work).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI } from "./harness.js";
import { one, parseExposition } from "./prometheus-text.js";

const POD_IP = "198.18.0.1";
const PEER_IP = "198.18.0.2";

function which(program: string): boolean {
  return ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((dir) => existsSync(join(dir, program)));
}

const skipReason =
  process.getuid?.() !== 0
    ? "needs root (network namespaces and iptables)"
    : !which("ip") || !which("nsenter")
      ? "needs ip (iproute2) and nsenter (util-linux)"
      : !which("iptables-restore") || !which("iptables-save")
        ? "needs iptables-restore and iptables-save (apt-get install iptables)"
        : undefined;

const id = randomBytes(3).toString("hex");
const POD = `rpod-${id}`;
const PEER = `rpeer-${id}`;
const VETH_POD = `rvp${id}`;
const VETH_PEER = `rvq${id}`;
const children: ChildProcess[] = [];
let dir = "";

/** A small HTTP server: answers `{name, port, remote}` on each port given. */
const SERVER = `
import { createServer } from "node:http";
const [name, ...ports] = process.argv.slice(2);
let pending = ports.length;
for (const port of ports) {
  createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ name, port: Number(port), remote: req.socket.remoteAddress, host: req.headers.host }));
  }).listen(Number(port), "0.0.0.0", () => { if (--pending === 0) console.log("ready"); });
}
`;

/** One GET; prints `{status, body}` or `{error}` (the code of a failed connect). */
const CLIENT = `
import { request } from "node:http";
const [url, host] = process.argv.slice(2);
const req = request(url, { headers: host ? { host } : {}, timeout: 5000 }, (res) => {
  let body = "";
  res.on("data", (c) => (body += c));
  res.on("end", () => console.log(JSON.stringify({ status: res.statusCode, body })));
});
req.on("timeout", () => req.destroy(new Error("timeout")));
req.on("error", (e) => console.log(JSON.stringify({ error: e.code ?? e.message })));
req.end();
`;

function sh(program: string, ...args: string[]): string {
  return execFileSync(program, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function netns(name: string): string {
  return `--net=/run/netns/${name}`;
}

/** Start a long-running process in a namespace; resolves once it printed `ready` (or `wait`). */
function startIn(
  name: string,
  args: string[],
  wait: RegExp,
  user?: number,
): Promise<{ child: ChildProcess; output: () => string }> {
  const ids = user === undefined ? [] : ["-S", String(user), "-G", String(user)];
  const child = spawn("nsenter", [netns(name), ...ids, process.execPath, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not started: ${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (wait.test(output)) {
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${output}`));
    });
  });
}

interface Answer {
  status?: number;
  body?: string;
  error?: string;
}

/** A GET from inside a namespace. `app`: run as the app would (ip netns exec: /etc/netns hosts). */
function getFrom(name: string, url: string, host?: string, app = false): Answer {
  const script = join(dir, "client.mjs");
  const args = host === undefined ? [script, url] : [script, url, host];
  const out = app
    ? sh("ip", "netns", "exec", name, process.execPath, ...args)
    : sh("nsenter", netns(name), process.execPath, ...args);
  return JSON.parse(out.trim()) as Answer;
}

function bodyOf(answer: Answer): { name: string; port: number; remote: string; host: string } {
  expect(answer.status, JSON.stringify(answer)).toBe(200);
  return JSON.parse(answer.body!);
}

/** remora's metrics, read from the peer through the pod's excluded port 15090. */
function metrics() {
  const answer = getFrom(PEER, `http://${POD_IP}:15090/stats/prometheus`);
  expect(answer.status).toBe(200);
  return parseExposition(answer.body!);
}

function requests(match: Record<string, string>): number {
  try {
    return one(metrics(), "istio_requests_total", match).value;
  } catch {
    return 0;
  }
}

function iptables(...args: string[]): string {
  return sh("nsenter", netns(POD), process.execPath, CLI, "iptables", ...args);
}

describe.skipIf(skipReason !== undefined)(
  `iptables interception in network namespaces${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  { timeout: 60_000 },
  () => {
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "remora-netns-"));
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, "server.mjs"), SERVER);
      writeFileSync(join(dir, "client.mjs"), CLIENT);
      sh("ip", "netns", "add", POD);
      sh("ip", "netns", "add", PEER);
      sh("ip", "link", "add", VETH_POD, "type", "veth", "peer", "name", VETH_PEER);
      sh("ip", "link", "set", VETH_POD, "netns", POD);
      sh("ip", "link", "set", VETH_PEER, "netns", PEER);
      for (const [ns, dev, ip] of [
        [POD, VETH_POD, POD_IP],
        [PEER, VETH_PEER, PEER_IP],
      ] as const) {
        sh("ip", "-n", ns, "addr", "add", `${ip}/30`, "dev", dev);
        sh("ip", "-n", ns, "link", "set", dev, "up");
        sh("ip", "-n", ns, "link", "set", "lo", "up");
      }
      // The app resolves `hello` as a pod resolves a Service name: to an address it dials on 80.
      mkdirSync(`/etc/netns/${POD}`, { recursive: true });
      writeFileSync(`/etc/netns/${POD}/hosts`, `127.0.0.1 localhost\n${PEER_IP} hello\n`);

      // Peer: the mesh service's backend (8080), a plain server on 8081 and 8082.
      await startIn(PEER, [join(dir, "server.mjs"), "peer", "8080", "8081", "8082"], /ready/);
      // Pod: the app on 8080 (captured) and 9000 (excluded).
      await startIn(POD, [join(dir, "server.mjs"), "app", "8080", "9000"], /ready/);
      const overlay = join(dir, "sidecar.yaml");
      writeFileSync(
        overlay,
        `services:
  - name: hello
    endpoints: [{ address: "${PEER_IP}:8080" }]
accessLog: { enabled: true }
`,
      );
      chmodSync(overlay, 0o644);
      await startIn(
        POD,
        [CLI, "sidecar", "--no-discovery", "--app-ports", "8080", "--config", overlay],
        /"remora ready"/,
        1337,
      );
      iptables(
        "--inbound-ports",
        "8080",
        "--exclude-inbound-ports",
        "9000",
        "--exclude-outbound-ports",
        "8081",
      );
    }, 60_000);

    afterAll(() => {
      for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
      for (const ns of [POD, PEER]) {
        try {
          sh("ip", "netns", "del", ns); // removes the veth pair with it
        } catch {}
      }
      rmSync(`/etc/netns/${POD}`, { recursive: true, force: true });
      if (dir !== "") rmSync(dir, { recursive: true, force: true });
    });

    it("installs the four chains as the init step would, and a second run changes nothing", () => {
      const before = sh("nsenter", netns(POD), "iptables-save", "-t", "nat");
      for (const chain of [
        "REMORA_INBOUND",
        "REMORA_REDIRECT",
        "REMORA_IN_REDIRECT",
        "REMORA_OUTPUT",
      ]) {
        expect(before).toContain(`:${chain} `);
      }
      iptables(
        "--inbound-ports",
        "8080",
        "--exclude-inbound-ports",
        "9000",
        "--exclude-outbound-ports",
        "8081",
      );
      const after = sh("nsenter", netns(POD), "iptables-save", "-t", "nat");
      const rules = (text: string) => text.split("\n").filter((line) => line.startsWith("-A"));
      expect(rules(after)).toEqual(rules(before));
    });

    it("the peer's request to the app port passes through remora's inbound listener", () => {
      const before = requests({ reporter: "destination" });
      const seen = bodyOf(getFrom(PEER, `http://${POD_IP}:8080/`));
      expect(seen.name).toBe("app");
      // remora forwarded it from loopback; a direct connection would come from the peer.
      expect(seen.remote).toBe("127.0.0.1");
      expect(requests({ reporter: "destination" })).toBe(before + 1);
    });

    it("the app's plain http://hello/ is captured to the outbound listener and reaches the peer, once (no loop)", () => {
      const before = requests({ reporter: "source", destination_service_name: "hello" });
      const seen = bodyOf(getFrom(POD, "http://hello/", undefined, true));
      expect(seen).toMatchObject({ name: "peer", port: 8080, remote: POD_IP });
      // remora's own upstream connection (UID 1337) was not captured again: exactly one request.
      expect(requests({ reporter: "source", destination_service_name: "hello" })).toBe(before + 1);
    });

    it("a host that is no mesh service is passed through (ALLOW_ANY), counted as PassthroughCluster", () => {
      const seen = bodyOf(getFrom(POD, `http://${PEER_IP}:8082/`, undefined, true));
      expect(seen).toMatchObject({ name: "peer", port: 8082 });
      expect(requests({ reporter: "source", destination_service_name: "PassthroughCluster" })).toBe(
        1,
      );
    });

    it("excluded ports bypass remora, inbound and outbound", () => {
      const before = requests({ reporter: "destination" });
      const inbound = bodyOf(getFrom(PEER, `http://${POD_IP}:9000/`));
      expect(inbound).toMatchObject({ name: "app", port: 9000, remote: PEER_IP });
      expect(requests({ reporter: "destination" })).toBe(before);
      // Host hello would be routed to 8080 by remora; excluded, the connection goes where dialled.
      const outbound = bodyOf(getFrom(POD, `http://${PEER_IP}:8081/`, "hello", true));
      expect(outbound).toMatchObject({ name: "peer", port: 8081 });
    });

    it("--cleanup removes the rules and traffic flows directly again", () => {
      expect(iptables("--cleanup")).toContain("ipv4: remora rules removed");
      expect(sh("nsenter", netns(POD), "iptables-save", "-t", "nat")).not.toContain("REMORA_");
      const inbound = bodyOf(getFrom(PEER, `http://${POD_IP}:8080/`));
      expect(inbound).toMatchObject({ name: "app", remote: PEER_IP });
      // Nothing listens on the peer's port 80: without capture, hello:80 is refused.
      expect(getFrom(POD, "http://hello/", undefined, true)).toEqual({ error: "ECONNREFUSED" });
    });
  },
);
