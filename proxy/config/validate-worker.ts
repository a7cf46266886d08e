/**
 * Child-process entry that does every piece of config validation (YAML + zod), so the proxy's
 * long-lived process never loads those libraries: measured here, that keeps ~9 MB of code and
 * heap out of the sidecar's resident memory. It answers one job on its IPC channel and exits.
 * See isolated.ts for the caller.
 */
import { loadBalancerModule } from "../../lb/module.js";
import { ConfigError, type ConfigIssue } from "./errors.js";
import type { ConfigJob, WorkerReply } from "./isolated.js";
import { moduleKeys, parseServicesFile, readConfigFile, serviceDefaults } from "./load.js";
import { loadOverlaid } from "./overlay.js";
import { quickConfig } from "./quick.js";
import type { RemoraConfig } from "./schema.js";

async function run(job: ConfigJob): Promise<unknown> {
  switch (job.kind) {
    case "file": {
      const { config, text } = readConfigFile(job.path, job.flags);
      await checkModules(config, job.path);
      return { config, serviceDefaults: serviceDefaults(), text };
    }
    case "quick":
      return { config: quickConfig(job.options), serviceDefaults: serviceDefaults() };
    case "services":
      return parseServicesFile(job.text, job.source);
    case "overlay": {
      const config = loadOverlaid(job.base, job.path);
      await checkModules(config, job.path ?? "generated sidecar config");
      return { config, serviceDefaults: serviceDefaults() };
    }
  }
}

/** Import every user balancer module, so `remora validate` and a reload report a broken one. */
async function checkModules(config: RemoraConfig, source: string): Promise<void> {
  const issues: ConfigIssue[] = [];
  for (const [path, settings] of moduleKeys(config)) {
    try {
      await loadBalancerModule(settings.module!.path, settings);
    } catch (error) {
      issues.push({ path, message: error instanceof Error ? error.message : String(error) });
    }
  }
  if (issues.length > 0) throw new ConfigError(source, issues);
}

async function answer(job: ConfigJob): Promise<WorkerReply> {
  try {
    return { ok: true, value: await run(job) };
  } catch (error) {
    return error instanceof ConfigError
      ? { ok: false, source: error.source, issues: error.issues }
      : {
          ok: false,
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        };
  }
}

process.once("message", async (job: ConfigJob) => {
  // Disconnecting lets the process exit once the reply is written.
  process.send!(await answer(job), () => process.disconnect());
});
