/**
 * Child-process entry that does every piece of config validation (YAML + zod), so the proxy's
 * long-lived process never loads those libraries: measured here, that keeps ~9 MB of code and
 * heap out of the sidecar's resident memory. It answers one job on its IPC channel and exits.
 * See isolated.ts for the caller.
 */
import { ConfigError } from "./errors.js";
import type { ConfigJob, WorkerReply } from "./isolated.js";
import { parseServicesFile, readConfigFile, serviceDefaults } from "./load.js";
import { quickConfig } from "./quick.js";

function run(job: ConfigJob): unknown {
  switch (job.kind) {
    case "file": {
      const { config, text } = readConfigFile(job.path);
      return { config, serviceDefaults: serviceDefaults(), text };
    }
    case "quick":
      return { config: quickConfig(job.options), serviceDefaults: serviceDefaults() };
    case "services":
      return parseServicesFile(job.text, job.source);
  }
}

function answer(job: ConfigJob): WorkerReply {
  try {
    return { ok: true, value: run(job) };
  } catch (error) {
    return error instanceof ConfigError
      ? { ok: false, source: error.source, issues: error.issues }
      : {
          ok: false,
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        };
  }
}

process.once("message", (job: ConfigJob) => {
  // Disconnecting lets the process exit once the reply is written.
  process.send!(answer(job), () => process.disconnect());
});
