import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERRORS } from "./errors.js";
import { localReply } from "./local-reply.js";

/** The error table in docs/http.md, parsed: code → [status, flag]. */
function documented(): Map<string, [number, string]> {
  const readme = readFileSync(new URL("../docs/http.md", import.meta.url), "utf8");
  const rows = new Map<string, [number, string]>();
  for (const match of readme.matchAll(
    /^\| `(REMORA_ERR_[A-Z_]+)`\s*\| (\d{3})\s*\| ([A-Z]+)\s*\|/gm,
  )) {
    rows.set(match[1]!, [Number(match[2]), match[3]!]);
  }
  return rows;
}

describe("error codes", () => {
  it("every code is documented in docs/http.md with its status and flag, and nothing else is", () => {
    const docs = documented();
    expect([...docs.keys()].sort()).toEqual(Object.keys(ERRORS).sort());
    for (const [code, { status, flag }] of Object.entries(ERRORS)) {
      expect(docs.get(code), code).toEqual([status, flag]);
    }
  });

  it("local replies carry the status, flag and a plain-text body with an exact length", () => {
    for (const [code, { status, flag, body }] of Object.entries(ERRORS)) {
      const text = localReply(code as keyof typeof ERRORS, true).toString("latin1");
      const [head, payload] = text.split("\r\n\r\n");
      expect(head).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [A-Za-z ]+\\r\\n`));
      expect(head).toContain(`x-remora-response-flags: ${flag}`);
      expect(head).toContain(`content-length: ${Buffer.byteLength(payload!)}`);
      expect(payload).toBe(`${body}\n`);
      expect(head).not.toContain("connection: close");
      expect(localReply(code as keyof typeof ERRORS, false).toString("latin1")).toContain(
        "connection: close",
      );
    }
  });
});
