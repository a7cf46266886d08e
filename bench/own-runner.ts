/**
 * Shared by the scenarios that have a runner of their own instead of the target tables
 * (`garbage`, `churn-cost`): run.ts hands their command lines over whole.
 */

/** Whether `argv` asks for scenario `name`, as `--scenario NAME` or `--scenario=NAME`. */
export function asksForScenario(argv: readonly string[], name: string): boolean {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--scenario=${name}` || (a === "--scenario" && argv[i + 1] === name)) return true;
  }
  return false;
}

/** The value of option `--name` as a positive whole number; throws naming the option. */
export function positiveInteger(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}

/** `--node-flags` split into Node.js flags. */
export function nodeFlagsOption(raw: string): string[] {
  return raw.split(/\s+/).filter((flag) => flag !== "");
}
