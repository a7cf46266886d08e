/**
 * Metric families whose numbers live in plain objects (written on the hot path without prom-client)
 * and are read at scrape time. Each family is registered in a prom-client Registry like any metric:
 * `get()` answers in prom-client's shape (so `registry.getMetricsAsJSON()` and `registry.metrics()`
 * see it), and `render()` writes the text format directly from label text built once per series.
 *
 * Why a renderer of our own: prom-client formats every label of every line on every scrape. With
 * Istio's 25 labels and 22 lines per histogram series, 1,000 services took 260-380 ms in
 * prom-client; label bytes encoded once and copied into Buffers (writer.ts) take a fraction of
 * that (bench/micro.ts, "scrape", and docs/metrics.md for the figures).
 */
import type { Registry } from "prom-client";
import { ExpositionWriter, formatValue } from "./writer.js";

/** A series' labels: the object prom-client consumers read and the text the renderer writes. */
export class LabelSet {
  readonly labels: Readonly<Record<string, string>>;
  /** `name="value",...` with values escaped; "" for no labels. */
  readonly text: string;
  /** `text` as UTF-8, copied as is into every line of the series. */
  readonly bytes: Buffer;

  constructor(names: readonly string[], values: readonly string[]) {
    const labels: Record<string, string> = {};
    const parts: string[] = [];
    for (let i = 0; i < names.length; i++) {
      const value = values[i] ?? "";
      labels[names[i]!] = value;
      parts.push(`${names[i]}="${escapeLabelValue(value)}"`);
    }
    this.labels = Object.freeze(labels);
    this.text = parts.join(",");
    this.bytes = Buffer.from(this.text, "utf8");
  }

  static readonly EMPTY = new LabelSet([], []);
}

/** Text format 0.0.4: backslash, double quote and line feed are escaped in label values. */
export function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value)
    ? value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
    : value;
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/**
 * Observations of one histogram series: a count per bucket (not cumulative; the last slot is
 * above the largest bound), their sum and their number.
 */
export class BucketTally {
  readonly bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    // Prometheus buckets are upper-inclusive (`le`); most values land in the first few.
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /** Add `count` observations at once to the bucket at `index` (for pre-binned sources). */
  addToBucket(index: number, count: number, sum: number): void {
    this.counts[index]! += count;
    this.sum += sum;
    this.count += count;
  }
}

export type CounterVisitor = (labels: LabelSet, value: number) => void;
export type HistogramVisitor = (labels: LabelSet, tally: BucketTally) => void;

interface PromValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** The prom-client metric shape: what Registry.registerMetric and its readers use. */
abstract class TallyFamily {
  readonly name: string;
  readonly help: string;
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly aggregator = "sum";
  readonly labelNames: readonly string[];

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** Register with a prom-client registry (it stores any object of this shape). */
  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
    return this;
  }

  /** Write this family's exposition text (HELP, TYPE, one line per sample). */
  abstract render(out: ExpositionWriter): void;

  /** prom-client's `get()`: the same numbers as objects. */
  abstract get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: PromValue[];
  }>;

  /** prom-client's `registry.resetMetrics()` calls this; the numbers belong to their owners. */
  reset(): void {}

  protected header(out: ExpositionWriter): void {
    out.text(`# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`);
  }
}

/** A counter or gauge family whose series a callback lists at scrape time. */
export class ValueFamily extends TallyFamily {
  readonly type: "counter" | "gauge";
  readonly #collect: (visit: CounterVisitor) => void;

  constructor(options: {
    name: string;
    help: string;
    type: "counter" | "gauge";
    labelNames: readonly string[];
    collect: (visit: CounterVisitor) => void;
  }) {
    super(options.name, options.help, options.labelNames);
    this.type = options.type;
    this.#collect = options.collect;
  }

  render(out: ExpositionWriter): void {
    this.header(out);
    const alone = Buffer.from(`${this.name} `);
    const open = Buffer.from(`${this.name}{`);
    this.#collect((labels, value) => {
      if (labels.text === "") out.bytes(alone);
      else {
        out.bytes(open);
        out.bytes(labels.bytes);
        out.bytes(CLOSE);
      }
      out.value(value);
    });
  }

  async get() {
    const values: PromValue[] = [];
    this.#collect((labels, value) => values.push({ value, labels: { ...labels.labels } }));
    return { name: this.name, help: this.help, type: this.type, aggregator: "sum", values };
  }
}

/** A histogram family whose series (BucketTally objects) a callback lists at scrape time. */
export class HistogramFamily extends TallyFamily {
  readonly type = "histogram";
  readonly bounds: readonly number[];
  readonly #collect: (visit: HistogramVisitor) => void;
  /** `,le="0.5"} ` ... `,le="+Inf"} `, built once. */
  readonly #le: readonly Buffer[];
  /** `NAME_bucket{le="0.5"} ` ..., for a series without labels. */
  readonly #leAlone: readonly Buffer[];

  constructor(options: {
    name: string;
    help: string;
    labelNames: readonly string[];
    bounds: readonly number[];
    collect: (visit: HistogramVisitor) => void;
  }) {
    super(options.name, options.help, options.labelNames);
    this.bounds = options.bounds;
    this.#collect = options.collect;
    const le = [...options.bounds.map(formatValue), "+Inf"];
    this.#le = le.map((bound) => Buffer.from(`,le="${bound}"} `));
    this.#leAlone = le.map((bound) => Buffer.from(`${this.name}_bucket{le="${bound}"} `));
  }

  render(out: ExpositionWriter): void {
    this.header(out);
    const bucket = Buffer.from(`${this.name}_bucket{`);
    const sum = Buffer.from(`${this.name}_sum{`);
    const count = Buffer.from(`${this.name}_count{`);
    const sumAlone = Buffer.from(`${this.name}_sum `);
    const countAlone = Buffer.from(`${this.name}_count `);
    const le = this.#le;
    const leAlone = this.#leAlone;
    this.#collect((labels, tally) => {
      const counts = tally.counts;
      let cumulative = 0;
      if (labels.text === "") {
        for (let i = 0; i < counts.length; i++) {
          cumulative += counts[i]!;
          out.bytes(leAlone[i]!);
          out.value(cumulative);
        }
        out.bytes(sumAlone);
        out.value(tally.sum);
        out.bytes(countAlone);
        out.value(tally.count);
        return;
      }
      const own = labels.bytes;
      for (let i = 0; i < counts.length; i++) {
        cumulative += counts[i]!;
        out.bytes(bucket);
        out.bytes(own);
        out.bytes(le[i]!);
        out.value(cumulative);
      }
      out.bytes(sum);
      out.bytes(own);
      out.bytes(CLOSE);
      out.value(tally.sum);
      out.bytes(count);
      out.bytes(own);
      out.bytes(CLOSE);
      out.value(tally.count);
    });
  }

  async get() {
    const values: PromValue[] = [];
    const bounds = [...this.bounds, "+Inf"];
    this.#collect((labels, tally) => {
      let cumulative = 0;
      for (let i = 0; i < tally.counts.length; i++) {
        cumulative += tally.counts[i]!;
        values.push({
          value: cumulative,
          labels: { ...labels.labels, le: bounds[i]! },
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({
        value: tally.sum,
        labels: { ...labels.labels },
        metricName: `${this.name}_sum`,
      });
      values.push({
        value: tally.count,
        labels: { ...labels.labels },
        metricName: `${this.name}_count`,
      });
    });
    return { name: this.name, help: this.help, type: this.type, aggregator: "sum", values };
  }
}

/**
 * The whole exposition: families of ours render themselves, prom-client's own metrics (process
 * metrics, small collect-time gauges) go through prom-client. Same layout as `registry.metrics()`.
 */
export async function renderRegistries(registries: readonly Registry[]): Promise<Buffer[]> {
  const out = new ExpositionWriter();
  for (const registry of registries) {
    for (const metric of registry.getMetricsAsArray() as unknown[]) {
      if (metric instanceof TallyFamily) metric.render(out);
      else {
        const name = (metric as { name: string }).name;
        out.text(`${await registry.getSingleMetricAsString(name)}\n`);
      }
    }
  }
  return out.finish();
}

const CLOSE = Buffer.from("} ");
