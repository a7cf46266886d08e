/**
 * A strict parser of the Prometheus text format 0.0.4, for tests: what a scraper would read,
 * so tests assert on families, samples and labels instead of grepping text. It throws on any
 * line it does not understand, a sample outside its declared family, or a repeated series.
 */

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum`, `x_count` for histograms). */
  readonly name: string;
  /** Label pairs in the order they were written. */
  readonly pairs: readonly (readonly [string, string])[];
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const lines = text.split("\n");
  if (lines.at(-1) !== "") throw new Error("exposition does not end with a line feed");
  for (const [index, line] of lines.entries()) {
    const where = `line ${index + 1}: ${line.slice(0, 120)}`;
    if (line === "") continue;
    if (line.startsWith("# HELP ")) {
      const rest = line.slice(7);
      const space = rest.indexOf(" ");
      const name = space < 0 ? rest : rest.slice(0, space);
      if (!NAME.test(name)) throw new Error(`bad metric name, ${where}`);
      if (families.has(name)) throw new Error(`family ${name} declared twice, ${where}`);
      current = {
        name,
        type: "untyped",
        help: space < 0 ? "" : rest.slice(space + 1),
        samples: [],
      };
      families.set(name, current);
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      if (current?.name !== name) throw new Error(`TYPE without its HELP, ${where}`);
      if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(type ?? "")) {
        throw new Error(`bad type, ${where}`);
      }
      current = { ...current, type: type! };
      families.set(name, current);
      continue;
    }
    if (line.startsWith("#")) continue;
    const sample = parseSample(line, where);
    if (current === undefined || !belongsTo(sample.name, current)) {
      throw new Error(`sample outside its family ${current?.name}, ${where}`);
    }
    const id = `${sample.name}{${sample.pairs.map(([k, v]) => `${k}=${v}`).join(",")}}`;
    if (seen.has(id)) throw new Error(`duplicate series ${id}`);
    seen.add(id);
    current.samples.push(sample);
  }
  return families;
}

function belongsTo(sample: string, family: Family): boolean {
  if (sample === family.name) return family.type !== "histogram";
  if (family.type === "histogram" || family.type === "summary") {
    return [`${family.name}_bucket`, `${family.name}_sum`, `${family.name}_count`].includes(sample);
  }
  return false;
}

function parseSample(line: string, where: string): Sample {
  const brace = line.indexOf("{");
  const firstSpace = line.indexOf(" ");
  let name: string;
  const pairs: [string, string][] = [];
  let rest: string;
  if (brace >= 0 && (firstSpace < 0 || brace < firstSpace)) {
    name = line.slice(0, brace);
    let at = brace + 1;
    while (line[at] !== "}") {
      const equals = line.indexOf("=", at);
      const label = line.slice(at, equals);
      if (!LABEL_NAME.test(label)) throw new Error(`bad label name "${label}", ${where}`);
      if (line[equals + 1] !== '"') throw new Error(`label value not quoted, ${where}`);
      let value = "";
      let i = equals + 2;
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new Error(`unterminated label value, ${where}`);
        if (c === "\\") {
          const next = line[i + 1];
          if (next === "n") value += "\n";
          else if (next === "\\" || next === '"') value += next;
          else throw new Error(`bad escape, ${where}`);
          i += 2;
          continue;
        }
        if (c === '"') break;
        value += c;
        i++;
      }
      if (pairs.some(([k]) => k === label)) throw new Error(`label ${label} twice, ${where}`);
      pairs.push([label, value]);
      at = i + 1;
      if (line[at] === ",") at++;
      else if (line[at] !== "}") throw new Error(`expected , or }, ${where}`);
    }
    rest = line.slice(at + 1);
  } else {
    name = line.slice(0, firstSpace);
    rest = line.slice(firstSpace);
  }
  if (!NAME.test(name)) throw new Error(`bad sample name, ${where}`);
  if (!rest.startsWith(" ")) throw new Error(`expected a space before the value, ${where}`);
  const [valueText, timestamp, extra] = rest.slice(1).split(" ");
  if (extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) {
    throw new Error(`trailing text, ${where}`);
  }
  const value = parseValue(valueText ?? "", where);
  return { name, pairs, labels: Object.fromEntries(pairs), value };
}

function parseValue(text: string, where: string): number {
  // As Prometheus (Go's ParseFloat): the specials in any case; prom-client writes "Nan".
  if (/^\+?inf$/i.test(text)) return Number.POSITIVE_INFINITY;
  if (/^-inf$/i.test(text)) return Number.NEGATIVE_INFINITY;
  if (/^nan$/i.test(text)) return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new Error(`bad value "${text}", ${where}`);
  }
  return Number(text);
}

/** The samples of `family` (optionally only `_bucket`/`_sum`/`_count`) whose labels include `match`. */
export function samples(
  families: Map<string, Family>,
  family: string,
  match: Record<string, string> = {},
  suffix = "",
): Sample[] {
  const found = families.get(family);
  if (found === undefined) throw new Error(`no family ${family}`);
  return found.samples.filter(
    (s) =>
      s.name === `${family}${suffix}` && Object.entries(match).every(([k, v]) => s.labels[k] === v),
  );
}

/** The one sample matching, or an error naming how many matched. */
export function one(
  families: Map<string, Family>,
  family: string,
  match: Record<string, string> = {},
  suffix = "",
): Sample {
  const found = samples(families, family, match, suffix);
  if (found.length !== 1) {
    throw new Error(`${found.length} samples of ${family}${suffix} match ${JSON.stringify(match)}`);
  }
  return found[0]!;
}

/**
 * Checks every series of a histogram family: buckets in increasing `le` order, cumulative
 * (never decreasing), ending at +Inf equal to `_count`. Returns the series checked.
 */
export function checkHistogram(families: Map<string, Family>, family: string): number {
  const found = families.get(family);
  if (found?.type !== "histogram") throw new Error(`${family} is not a histogram`);
  const bySeries = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const sample of found.samples) {
    const key = sample.pairs
      .filter(([k]) => k !== "le")
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    const entry = bySeries.get(key) ?? { buckets: [] };
    bySeries.set(key, entry);
    if (sample.name.endsWith("_bucket")) {
      const le = sample.labels.le;
      if (le === undefined) throw new Error(`${family} bucket without le`);
      entry.buckets.push([le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), sample.value]);
    } else if (sample.name.endsWith("_count")) entry.count = sample.value;
  }
  for (const [key, { buckets, count }] of bySeries) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]![0] > buckets[i - 1]![0])) throw new Error(`${family}{${key}}: le order`);
      if (buckets[i]![1] < buckets[i - 1]![1]) {
        throw new Error(`${family}{${key}}: buckets are not cumulative`);
      }
    }
    const last = buckets.at(-1);
    if (last === undefined || last[0] !== Number.POSITIVE_INFINITY) {
      throw new Error(`${family}{${key}}: no +Inf bucket`);
    }
    if (last[1] !== count) throw new Error(`${family}{${key}}: +Inf ${last[1]} != count ${count}`);
  }
  return bySeries.size;
}
