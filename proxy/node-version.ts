/**
 * The Node.js lines remora supports, checked once when the CLI starts.
 *
 * 22 is the oldest line still maintained (until April 2027); Node 20 went end of life on
 * 2026-04-30. Within 22, two floors: 22.12 is the first with `reusePort` on `server.listen()`
 * (SO_REUSEPORT), which the listeners rely on to accept more than one connection per event-loop
 * turn (listeners/accept.ts), and undici 8, remora's HTTP client, needs 22.19. Keep this in step
 * with `engines.node` in package.json (a test checks).
 */
export const MIN_NODE = "22.19.0";

/** Set to "1" to run on an older Node anyway; the benchmark uses it to compare runtimes. */
export const ALLOW_UNSUPPORTED_ENV = "REMORA_ALLOW_UNSUPPORTED_NODE";

/** Whether `version` ("22.12.0", "v24.21.0") is at least MIN_NODE. */
export function nodeSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  const [minMajor = 0, minMinor = 0] = MIN_NODE.split(".").map(Number);
  return major > minMajor || (major === minMajor && minor >= minMinor);
}

/** The refusal printed when the running Node is too old, or undefined when it is fine. */
export function unsupportedNodeMessage(
  version: string = process.version,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (nodeSupported(version) || env[ALLOW_UNSUPPORTED_ENV] === "1") return undefined;
  return (
    `remora needs Node.js ${MIN_NODE} or newer (24 LTS recommended); this is ${version} ` +
    `(${process.execPath}). Run it through npm (\`npm start\`, \`npx remora\`), which uses the ` +
    `Node.js pinned in package.json, or install Node.js 24. See docs/runtime.md.`
  );
}
