/**
 * Upstream connects that failed because the process (EMFILE) or the system (ENFILE) had no file
 * descriptor left: counted where they happen (proxy/upstream/pool.ts, the TCP listener), logged
 * and exported by the overload monitor. Process-wide, as descriptors are.
 */
export const upstreamDescriptorErrors = { EMFILE: 0, ENFILE: 0 };

/** Note a connect error; true when it was for lack of descriptors (and counted). */
export function noteUpstreamConnectError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;

  if (code !== "EMFILE" && code !== "ENFILE") return false;
  upstreamDescriptorErrors[code]++;
  return true;
}
