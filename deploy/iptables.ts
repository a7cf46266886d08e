/**
 * `remora iptables`: the init step that routes the pod's TCP through the sidecar, like Istio's
 * istio-iptables. Flags are checked here, the rules come from iptables-rules.ts (pure), and this
 * module only runs `iptables-save` / `iptables-restore --noflush` (and their ip6tables twins).
 */
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { RemoraError } from "../proxy/errors.js";
import { PROXY_GID, PROXY_UID, parsePortList } from "./interception.js";
import {
  cidrProblem,
  cleanupPlan,
  DEFAULT_SETTINGS,
  type InterceptionSettings,
  type IpFamily,
  installPlan,
  interceptionRules,
} from "./iptables-rules.js";

export const IPTABLES_HELP = `Usage:
  remora iptables [--inbound-ports PORTS|*] [--exclude-inbound-ports PORTS]
                  [--exclude-outbound-ports PORTS] [--include-outbound-ip-ranges CIDRS|*]
                  [--exclude-outbound-ip-ranges CIDRS] [--proxy-uid UID] [--proxy-gid GID]
                  [--ipv6 auto|true|false] [--dry-run | --cleanup]

Installs the nat-table chains REMORA_INBOUND, REMORA_REDIRECT, REMORA_IN_REDIRECT and
REMORA_OUTPUT in the current network namespace (a pod's init container, with NET_ADMIN and
NET_RAW): inbound TCP goes to remora's inbound listeners, outbound TCP to 15001, except the
proxy's own traffic (its UID/GID), loopback, and excluded ports. Running it again replaces the
rules (never duplicates them). Needs iptables-restore and iptables-save (see docs/deploy.md).

Options:
      --inbound-ports PORTS          app ports to capture, in the sidecar's order (each goes to
                                     its own inbound listener: the first to 15006, then 15007...),
                                     or * (default): every port not excluded, to 15006
      --exclude-inbound-ports PORTS  never captured inbound (15090, 15021, 15000 always are)
      --exclude-outbound-ports PORTS never captured outbound (e.g. 443, databases: only plain
                                     HTTP/1.1 can be routed, see docs/deploy.md)
      --include-outbound-ip-ranges CIDRS
                                     destinations whose TCP is captured (default *: all)
      --exclude-outbound-ip-ranges CIDRS
                                     destinations never captured
      --proxy-uid UID                the sidecar's user, never captured (default 1337)
      --proxy-gid GID                the sidecar's group, never captured (default 1337)
      --ipv6 MODE                    auto (default): also ip6tables when it is installed and the
                                     kernel has IPv6; true: required; false: IPv4 only
      --dry-run                      print the rules (iptables-restore input) and change nothing
      --cleanup                      remove remora's chains and jumps
PORTS and CIDRS are comma-separated lists.
`;

type Ipv6Mode = "auto" | "true" | "false";

export class IptablesUsageError extends Error {
  override readonly name = "IptablesUsageError";
}

/** Runs the iptables programs; replaced in tests. */
export interface IptablesTools {
  save(family: IpFamily): Promise<string>;
  restore(family: IpFamily, input: string): Promise<void>;
  /** Whether the family's tools are installed and the kernel has it. */
  available(family: IpFamily): boolean;
}

/** A failure to change the rules: the CLI prints its message on one line and exits 1. */
function failure(message: string): RemoraError {
  return new RemoraError("REMORA_ERR_IPTABLES", message);
}

function programs(family: IpFamily): { save: string; restore: string } {
  return family === "ipv4"
    ? { save: "iptables-save", restore: "iptables-restore" }
    : { save: "ip6tables-save", restore: "ip6tables-restore" };
}

function onPath(program: string): boolean {
  const dirs = (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":");
  return dirs.some((dir) => dir !== "" && existsSync(`${dir}/${program}`));
}

export const systemTools: IptablesTools = {
  save(family) {
    return new Promise((resolve, reject) => {
      execFile(programs(family).save, ["-t", "nat"], (error, stdout, stderr) => {
        if (error)
          reject(failure(`${programs(family).save} -t nat failed: ${stderr || error.message}`));
        else resolve(stdout);
      });
    });
  },
  restore(family, input) {
    const program = programs(family).restore;
    return new Promise((resolve, reject) => {
      const child = spawn(program, ["--noflush"], { stdio: ["pipe", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.once("error", (error) => reject(failure(`${program}: ${error.message}`)));
      child.once("close", (code) => {
        if (code === 0) resolve();
        else reject(failure(`${program} --noflush exited with ${code}: ${stderr.trim()}`));
      });
      child.stdin.end(input);
    });
  },
  available(family) {
    const { save, restore } = programs(family);
    if (!onPath(save) || !onPath(restore)) return false;
    return family === "ipv4" || existsSync("/proc/net/if_inet6");
  },
};

function portsFlag(text: string | undefined, flag: string): number[] {
  if (text === undefined) return [];
  try {
    return parsePortList(text, flag);
  } catch (error) {
    throw new IptablesUsageError((error as Error).message);
  }
}

function cidrsFlag(text: string | undefined, flag: string): string[] {
  if (text === undefined) return [];
  const cidrs = text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  for (const cidr of cidrs) {
    const problem = cidrProblem(cidr);
    if (problem !== undefined) throw new IptablesUsageError(`${flag}: ${problem}`);
  }
  return cidrs;
}

function idFlag(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,10}$/.test(text) || Number(text) > 0xffffffff) {
    throw new IptablesUsageError(`${flag}: expected a numeric id, got "${text}"`);
  }
  return Number(text);
}

export interface IptablesCommand {
  readonly settings: InterceptionSettings;
  readonly ipv6: Ipv6Mode;
  readonly action: "install" | "dry-run" | "cleanup";
  readonly help: boolean;
}

/** Flags → what to do; throws IptablesUsageError (or parseArgs' ERR_PARSE_ARGS_*) on bad input. */
export function parseIptablesArgs(args: readonly string[]): IptablesCommand {
  const { values } = parseArgs({
    args: [...args],
    options: {
      help: { type: "boolean", short: "h" },
      "inbound-ports": { type: "string" },
      "exclude-inbound-ports": { type: "string" },
      "exclude-outbound-ports": { type: "string" },
      "include-outbound-ip-ranges": { type: "string" },
      "exclude-outbound-ip-ranges": { type: "string" },
      "proxy-uid": { type: "string" },
      "proxy-gid": { type: "string" },
      ipv6: { type: "string" },
      "dry-run": { type: "boolean" },
      cleanup: { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values["dry-run"] && values.cleanup) {
    throw new IptablesUsageError("--dry-run and --cleanup cannot be combined");
  }
  const ipv6 = values.ipv6 ?? "auto";
  if (ipv6 !== "auto" && ipv6 !== "true" && ipv6 !== "false") {
    throw new IptablesUsageError(`--ipv6: expected auto, true or false, got "${ipv6}"`);
  }
  const inbound = values["inbound-ports"]?.trim() ?? "*";
  const include = values["include-outbound-ip-ranges"]?.trim() ?? "*";
  const settings: InterceptionSettings = {
    ...DEFAULT_SETTINGS,
    proxyUid: idFlag(values["proxy-uid"], "--proxy-uid", PROXY_UID),
    proxyGid: idFlag(values["proxy-gid"], "--proxy-gid", PROXY_GID),
    inboundPorts: inbound === "*" ? "*" : portsFlag(inbound, "--inbound-ports"),
    excludeInboundPorts: portsFlag(values["exclude-inbound-ports"], "--exclude-inbound-ports"),
    excludeOutboundPorts: portsFlag(values["exclude-outbound-ports"], "--exclude-outbound-ports"),
    includeOutboundIpRanges:
      include === "*" ? "*" : cidrsFlag(include, "--include-outbound-ip-ranges"),
    excludeOutboundIpRanges: cidrsFlag(
      values["exclude-outbound-ip-ranges"],
      "--exclude-outbound-ip-ranges",
    ),
  };
  return {
    settings,
    ipv6,
    action: values["dry-run"] ? "dry-run" : values.cleanup ? "cleanup" : "install",
    help: values.help ?? false,
  };
}

/**
 * Carry out a parsed command; resolves with what to print. IPv4 is required; IPv6 follows
 * `--ipv6` (auto: when ip6tables and the kernel have it, else a note that it was skipped).
 */
export async function runIptables(
  command: IptablesCommand,
  tools: IptablesTools = systemTools,
): Promise<string> {
  const { settings, ipv6, action } = command;
  if (action === "dry-run") {
    let text = interceptionRules(settings, "ipv4");
    if (ipv6 !== "false")
      text += `# IPv6 (ip6tables-restore)\n${interceptionRules(settings, "ipv6")}`;
    return text;
  }
  const families: IpFamily[] = ["ipv4"];
  const notes: string[] = [];
  if (!tools.available("ipv4")) {
    throw failure(
      "iptables-save and iptables-restore are needed (Debian: apt-get install iptables)",
    );
  }
  if (ipv6 === "true" && !tools.available("ipv6")) {
    throw failure("--ipv6 true: ip6tables-save/ip6tables-restore or the kernel's IPv6 is missing");
  }
  if (ipv6 === "true" || (ipv6 === "auto" && tools.available("ipv6"))) families.push("ipv6");
  else if (ipv6 === "auto") notes.push("IPv6: ip6tables or the kernel's IPv6 not found, skipped");
  for (const family of families) {
    const saved = await tools.save(family);
    if (action === "cleanup") {
      const plan = cleanupPlan(saved);
      if (plan === "") notes.push(`${family}: no remora rules to remove`);
      else {
        await tools.restore(family, plan);
        notes.push(`${family}: remora rules removed`);
      }
    } else {
      await tools.restore(family, installPlan(saved, settings, family));
      notes.push(`${family}: remora rules installed`);
    }
  }
  return `${notes.join("\n")}\n`;
}

/** `remora iptables ARGS`: exit code 0, or throws (the CLI prints the reason). */
export async function iptablesCommand(args: readonly string[]): Promise<number> {
  const command = parseIptablesArgs(args);
  if (command.help) {
    process.stdout.write(IPTABLES_HELP);
    return 0;
  }
  process.stdout.write(await runIptables(command));
  return 0;
}
