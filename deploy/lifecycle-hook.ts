/**
 * The classic-mode sidecar's exec hooks (`remora hook post-start|pre-stop`). The image has no
 * shell, so what `sh -c 'until curl ...; do sleep 1; done'` would do is done here.
 */
import { setTimeout as sleep } from "node:timers/promises";

const POLL_MS = 250;

/** Polls the probe port's readiness until 200 (exit 0) or the timeout (exit 1). */
export async function postStart(options: {
  probePort: number;
  timeoutMs: number;
}): Promise<number> {
  const url = `http://127.0.0.1:${options.probePort}/healthz/ready`;
  const deadline = Date.now() + options.timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return 0;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(POLL_MS);
  }
  process.stderr.write(
    `remora hook post-start: ${url} not ready after ${options.timeoutMs} ms (${last})\n`,
  );
  return 1;
}

/**
 * Holds the proxy's SIGTERM back: the kubelet runs this hook, and only then signals the proxy,
 * while the app is signalled at once; its shutdown calls still find the proxy serving.
 */
export async function preStop(options: { waitMs: number }): Promise<number> {
  await sleep(options.waitMs);
  return 0;
}
