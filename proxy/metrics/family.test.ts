import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { parseExposition } from "../../test/prometheus-text.js";
import { CONTENT_TYPE } from "./contract.js";
import { BucketTally, HistogramFamily, LabelSet, renderRegistries, ValueFamily } from "./family.js";

const renderRegistry = (registry: Registry) => renderRegistries([registry]);

const BOUNDS = [1, 5, 10];

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString("utf8");

describe("BucketTally", () => {
  it("puts a value equal to a bound in that bound's bucket (le is inclusive)", () => {
    const tally = new BucketTally(BOUNDS);
    for (const value of [0, 1, 1.5, 5, 10, 11]) tally.observe(value);
    expect([...tally.counts]).toEqual([2, 2, 1, 1]);
    expect(tally.count).toBe(6);
    expect(tally.sum).toBe(28.5);
  });
});

describe("tally families", () => {
  /** The same numbers through prom-client's own Counter/Histogram and through our families. */
  function both() {
    const ours = new Registry();
    const theirs = new Registry();
    const weird = new LabelSet(["path", "code"], ['say "hi"\\\n', "200"]);
    const plain = new LabelSet(["path", "code"], ["/", "404"]);
    const tallies = new Map([
      [weird, new BucketTally(BOUNDS)],
      [plain, new BucketTally(BOUNDS)],
    ]);
    const counts = new Map([
      [weird, 3],
      [plain, 7],
    ]);
    const counter = new Counter({
      name: "x_total",
      help: "x",
      labelNames: ["path", "code"],
      registers: [theirs],
    });
    const histogram = new Histogram({
      name: "x_ms",
      help: "x",
      labelNames: ["path", "code"],
      buckets: BOUNDS,
      registers: [theirs],
    });
    for (const [labels, n] of counts) counter.inc(labels.labels, n);
    for (const [labels, tally] of tallies) {
      for (const value of labels === weird ? [0.5, 7, 70] : [5, 5]) {
        tally.observe(value);
        histogram.observe(labels.labels, value);
      }
    }
    new ValueFamily({
      name: "x_total",
      help: "x",
      type: "counter",
      labelNames: ["path", "code"],
      collect: (visit) => {
        for (const [labels, n] of counts) visit(labels, n);
      },
    }).register(ours);
    new HistogramFamily({
      name: "x_ms",
      help: "x",
      labelNames: ["path", "code"],
      bounds: BOUNDS,
      collect: (visit) => {
        for (const [labels, tally] of tallies) visit(labels, tally);
      },
    }).register(ours);
    return { ours, theirs };
  }

  /** Families and samples, label order aside (prom-client writes `le` first, Istio last). */
  function normalized(text: string) {
    return [...parseExposition(text).values()].map((family) => ({
      ...family,
      samples: family.samples.map(({ name, labels, value }) => ({ name, labels, value })),
    }));
  }

  it("render the same samples as prom-client, escapes included", async () => {
    const { ours, theirs } = both();
    const mine = parseExposition(text(await renderRegistry(ours)));
    expect(normalized(text(await renderRegistry(ours)))).toEqual(
      normalized(await theirs.metrics()),
    );
    expect(mine.get("x_total")!.samples[0]!.labels.path).toBe('say "hi"\\\n');
  });

  it("answer prom-client's get() alike, so getMetricsAsJSON readers see them", async () => {
    const { ours, theirs } = both();
    // prom-client adds empty exemplar slots to its own values; nothing else may differ.
    const withoutExemplars = (json: unknown) =>
      JSON.parse(JSON.stringify(json, (key, value) => (key === "exemplar" ? undefined : value)));
    expect(withoutExemplars(await ours.getMetricsAsJSON())).toEqual(
      withoutExemplars(await theirs.getMetricsAsJSON()),
    );
  });

  it("render through prom-client's own registry.metrics() too", async () => {
    const { ours } = both();
    const viaPromClient = parseExposition(await ours.metrics());
    expect([...viaPromClient.values()]).toEqual([
      ...parseExposition(text(await renderRegistry(ours))).values(),
    ]);
  });
});

describe("CONTENT_TYPE", () => {
  it("is prom-client's registry content type (text format 0.0.4)", () => {
    expect(CONTENT_TYPE).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
    expect(new Registry().contentType).toBe(CONTENT_TYPE);
  });
});
