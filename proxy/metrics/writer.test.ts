import { describe, expect, it } from "vitest";
import { ExpositionWriter } from "./writer.js";

function written(write: (w: ExpositionWriter) => void): string {
  const writer = new ExpositionWriter();
  write(writer);
  return Buffer.concat(writer.finish()).toString("utf8");
}

describe("ExpositionWriter", () => {
  it("writes values as the text format does, integers without a string", () => {
    const values = [0, 7, 10, 1234567890123, 2 ** 53 + 2, 0.25, -3, 1e21, Number.NaN, -Infinity];
    const text = written((w) => {
      for (const value of values) w.value(value);
    });
    expect(text.split("\n").slice(0, -1)).toEqual([
      "0",
      "7",
      "10",
      "1234567890123",
      "9007199254740994",
      "0.25",
      "-3",
      "1e+21",
      "NaN",
      "-Inf",
    ]);
  });

  it("keeps UTF-8 text and bytes in order across chunk boundaries", () => {
    const big = "ü".repeat(700_000); // 1.4 MB of UTF-8, more than one chunk
    const label = Buffer.from('a="ß"');
    const text = written((w) => {
      for (let i = 0; i < 50_000; i++) {
        w.bytes(label);
        w.value(i);
      }
      w.text(big);
      w.value(1);
    });
    const lines = text.split("\n");
    expect(lines[0]).toBe('a="ß"0');
    expect(lines[49_999]).toBe('a="ß"49999');
    expect(lines[50_000]).toBe(`${big}1`);
  });
});
