/** One thing wrong with a config, located by its key path (`listeners[1].port`). */
export interface ConfigIssue {
  /** Key path in the document; "" for the document itself (e.g. a YAML syntax error). */
  readonly path: string;
  readonly message: string;
  /** 1-based line in the source text, when known. */
  readonly line?: number;
}

/**
 * A config (file, discovery file or command line) was rejected. `issues` lists every problem
 * found, not just the first, so one edit-and-retry cycle fixes them all.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "REMORA_ERR_CONFIG";
  /** Where the text came from: a file path or "command line". */
  readonly source: string;
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[]) {
    super(`${source}: invalid config\n${issues.map(formatIssue).join("\n")}`);
    this.source = source;
    this.issues = issues;
  }
}

function formatIssue(issue: ConfigIssue): string {
  if (issue.path === "") return `  - ${issue.message}`;
  const where = issue.line === undefined ? "" : ` (line ${issue.line})`;
  return `  - ${issue.path}: ${issue.message}${where}`;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `["listeners", 1, "port"]` → `listeners[1].port`; odd keys are quoted: `labels["app/x"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (typeof segment === "string" && IDENTIFIER.test(segment)) {
      out += out === "" ? segment : `.${segment}`;
    } else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}
