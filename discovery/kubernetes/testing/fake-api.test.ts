import { request } from "node:https";
import { afterEach, describe, expect, it } from "vitest";
import { FakeKubeApi, sliceObject } from "./fake-api.js";

let api: FakeKubeApi | undefined;

afterEach(async () => {
  await api?.stop();
  api = undefined;
});

/**
 * A watch of endpointslices from `rv`; `onData` gets the body's text so far with each chunk and
 * says when it has what it wanted (the stream is then closed).
 */
function watchBody(
  server: FakeKubeApi,
  rv: string,
  onData: (text: string, chunk: string) => boolean,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: server.port,
        path: `/apis/discovery.k8s.io/v1/endpointslices?watch=true&resourceVersion=${rv}`,
        headers: { authorization: `Bearer ${server.token}` },
        ca: server.ca.certPem,
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
          if (!onData(text, String(chunk))) return;
          res.destroy();
          resolve();
        });
        res.on("error", () => {});
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The first event line of a watch of endpointslices from `rv`. */
async function firstWatchEvent(
  server: FakeKubeApi,
  rv: string,
  // biome-ignore lint/suspicious/noExplicitAny: watch events are open-ended JSON.
): Promise<{ type: string; object: any }> {
  let first = "";
  await watchBody(server, rv, (text) => {
    const end = text.indexOf("\n");
    if (end !== -1) first = text.slice(0, end);
    return end !== -1;
  });
  return JSON.parse(first);
}

const slice = (name: string) =>
  sliceObject(name, "default", "web", [{ ip: "10.0.0.1" }], { name: "http", port: 80 });

describe("the fake API server's event history", () => {
  it("is capped: a watch from before the oldest event kept is 410, one from after replays", async () => {
    api = new FakeKubeApi({ maxHistory: 10 });
    await api.start();
    const first = api.put("endpointslices", slice("s-0")).metadata.resourceVersion;
    for (let i = 1; i < 30; i++) api.put("endpointslices", slice(`s-${i}`));
    expect(api.historyLength).toBeLessThanOrEqual(10);
    const gone = await firstWatchEvent(api, first);
    expect(gone.type).toBe("ERROR");
    expect(gone.object.code).toBe(410);
    const recent = String(Number(api.resourceVersion) - 2);
    const replayed = await firstWatchEvent(api, recent);
    expect(replayed.type).toBe("ADDED");
    expect(replayed.object.metadata.name).toBe("s-28");
  });

  it("keeps every event of a short history (the tests' default cap is far above it)", async () => {
    api = new FakeKubeApi();
    await api.start();
    const first = api.put("endpointslices", slice("s-0")).metadata.resourceVersion;
    for (let i = 1; i < 30; i++) api.put("endpointslices", slice(`s-${i}`));
    expect(api.historyLength).toBe(30);
    expect((await firstWatchEvent(api, first)).object.metadata.name).toBe("s-1");
  });
});

/** The body chunks of a watch of endpointslices from `rv`, until `lines` lines have come. */
async function watchChunks(server: FakeKubeApi, rv: string, lines: number): Promise<string[]> {
  const chunks: string[] = [];
  await watchBody(server, rv, (text, chunk) => {
    chunks.push(chunk);
    return text.split("\n").length > lines;
  });
  return chunks;
}

describe("the fake API server's watch writes", () => {
  it("without cuts, writes the events of one turn as one chunk, in order, as kube-apiserver flushes", async () => {
    api = new FakeKubeApi({ cutEvents: false });
    await api.start();
    const rv = api.put("endpointslices", slice("s-0")).metadata.resourceVersion;
    const server = api;
    const chunks = watchChunks(server, rv, 4);
    // Once the watch is open, four events in one turn, then one in the next.
    for (let i = 0; i < 100 && server.watchCount === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (let i = 1; i <= 4; i++) server.put("endpointslices", slice(`s-${i}`));
    const got = await chunks;
    const names = got
      .join("")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line).object.metadata.name);
    expect(names).toEqual(["s-1", "s-2", "s-3", "s-4"]);
    expect(got.length).toBe(1);
  });
});
