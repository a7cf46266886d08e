/**
 * Seeded inputs for the HTTP/1.1 codec fuzzer (issue 14): valid requests, then mutated byte by
 * byte or field by field, pipelined, with chunk-size and size-limit edges. Every case is a pure
 * function of (seed, index), so a failure found in a long run replays from those two numbers.
 */

/** mulberry32: small, fast, and the same sequence for the same seed on every platform. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Random = () => number;

export const pick = <T>(r: Random, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
export const int = (r: Random, lo: number, hi: number): number =>
  lo + Math.floor(r() * (hi - lo + 1));

/** The random source of case `index` of a run seeded `seed`: independent of every other case. */
export function caseRandom(seed: number, index: number): Random {
  return seededRandom(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
}

/** The limits a case is built around; the in-process fuzzer uses small ones to reach them often. */
export interface CaseLimits {
  readonly maxHeadBytes: number;
  readonly maxTargetBytes: number;
}

export interface FuzzCase {
  /** What the case was built from, for the report (e.g. "valid+chunk-edge+flip"). */
  readonly tags: string[];
  /** Everything the client sends on one connection. */
  readonly wire: Buffer;
}

/** How far a generator may stray from valid HTTP. */
export interface CaseOptions {
  /**
   * Service name written into Host (routing in a real remora). "structured" keeps mutations to
   * field lines and bodies, so the request-line stays one a Node backend would take.
   */
  readonly host: string;
  readonly mutations: "bytes" | "structured";
}

// ----------------------------------------------------------------------------- valid requests

const METHODS = ["GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
const TARGETS = ["/", "/a/b?c=d&e=f", "/%7Euser/x.html", "/a;b=c", "/search?q=a+b", "/x/../y"];
const VALUE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,;:/=?&()@+*";
const NAMES = ["Accept", "User-Agent", "X-Custom", "x-lower", "Cookie", "Accept-Encoding", "X-A"];

function text(r: Random, lo: number, hi: number): string {
  let s = "";
  const n = int(r, lo, hi);
  for (let i = 0; i < n; i++) {
    s += i > 0 && i < n - 1 && r() < 0.1 ? " " : VALUE_CHARS[int(r, 0, VALUE_CHARS.length - 1)];
  }
  return s;
}

/** One request as parts, so mutations can aim at a line, a field or the body. */
interface Draft {
  line: string;
  fields: string[];
  body: string;
}

function render(d: Draft): string {
  return `${d.line}\r\n${d.fields.map((f) => `${f}\r\n`).join("")}\r\n${d.body}`;
}

/** A chunked body for `payload`, with chunk-size spellings chosen by `edge`. */
function chunkedBody(r: Random, payload: string, edge: boolean): string {
  let out = "";
  let rest = payload;
  while (rest.length > 0) {
    const n = Math.min(rest.length, int(r, 1, 9));
    let size = n.toString(16);
    if (edge) {
      if (r() < 0.3) size = size.toUpperCase();
      if (r() < 0.3) size = "0".repeat(int(r, 1, 15 - size.length)) + size;
    }
    const ext = edge && r() < 0.3 ? pick(r, [";a", ";a=b", ';a="q d"', ";a=b;c", ";x=\\"]) : "";
    out += `${size}${ext}\r\n${rest.slice(0, n)}\r\n`;
    rest = rest.slice(n);
  }
  const trailers = edge && r() < 0.3 ? `X-Trailer: ${text(r, 1, 6)}\r\n` : "";
  return `${out}0\r\n${trailers}\r\n`;
}

function validDraft(r: Random, opts: CaseOptions, limits: CaseLimits): Draft {
  const method = pick(r, METHODS);
  const version = r() < 0.9 ? "HTTP/1.1" : "HTTP/1.0";
  const fields = [`Host: ${opts.host}`];
  for (let i = int(r, 0, 4); i > 0; i--) {
    fields.splice(int(r, 0, fields.length), 0, `${pick(r, NAMES)}: ${text(r, 1, 16)}`);
  }
  if (version === "HTTP/1.0" && r() < 0.5) fields.push("Connection: keep-alive");
  let body = "";
  const bodyChance = method === "POST" || method === "PUT" || method === "PATCH" ? 0.85 : 0.1;
  if (r() < bodyChance) {
    const payload = text(r, 0, 40);
    if (version === "HTTP/1.1" && r() < 0.45) {
      fields.push(
        `Transfer-Encoding: ${pick(r, ["chunked", "chunked", "Chunked", "gzip, chunked"])}`,
      );
      body = chunkedBody(r, payload, r() < 0.4);
    } else {
      fields.push(`Content-Length: ${payload.length}`);
      body = payload;
    }
  }
  const target =
    r() < 0.05
      ? `/${"t".repeat(int(r, limits.maxTargetBytes - 3, limits.maxTargetBytes + 1))}`
      : pick(r, TARGETS);
  return { line: `${method} ${target} ${version}`, fields, body };
}

// ----------------------------------------------------------------------------- mutations

/** Bytes worth inserting: the ones parsers disagree about. */
const SPECIAL = [
  0x0d, 0x0a, 0x09, 0x20, 0x00, 0x3a, 0x2c, 0x3b, 0x30, 0x61, 0x7f, 0x80, 0xff, 0x0b,
];

const OWS = [" ", "\t", "  ", " \t", "\t "];

/** Mutations of one draft's structure; each keeps the request-line intact. */
const FIELD_MUTATIONS: Record<string, (r: Random, d: Draft, limits: CaseLimits) => void> = {
  "dup-field": (r, d) => {
    if (d.fields.length > 0) d.fields.splice(int(r, 0, d.fields.length), 0, pick(r, d.fields));
  },
  "case-change": (r, d) => {
    if (d.fields.length === 0) return;
    const i = int(r, 0, d.fields.length - 1);
    const f = d.fields[i]!;
    d.fields[i] = r() < 0.5 ? f.toUpperCase() : f.toLowerCase();
  },
  "ows-around-value": (r, d) => {
    if (d.fields.length === 0) return;
    const i = int(r, 0, d.fields.length - 1);
    const f = d.fields[i]!;
    const colon = f.indexOf(":");
    if (colon === -1) return;
    d.fields[i] =
      `${f.slice(0, colon + 1)}${pick(r, OWS)}${f.slice(colon + 1).trim()}${pick(r, ["", ...OWS])}`;
  },
  "framing-field": (r, d) => {
    d.fields.push(
      pick(r, [
        `Content-Length:${pick(r, OWS)}${d.body.length}${pick(r, OWS)}`,
        `Content-Length: ${d.body.length}, ${d.body.length}`,
        `Content-Length: ${d.body.length + 1}`,
        `Content-Length: 0${d.body.length}`,
        `Transfer-Encoding:${pick(r, OWS)}chunked${pick(r, OWS)}`,
        `Transfer-Encoding: chunked${pick(r, OWS)}x`,
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: chunked, chunked",
        "Content-Length: 4\t2",
      ]),
    );
  },
  "obs-fold": (r, d) => {
    d.fields.splice(int(r, 1, d.fields.length), 0, `${pick(r, OWS)}folded`);
  },
  "space-before-colon": (r, d) => {
    if (d.fields.length === 0) return;
    const i = int(r, 0, d.fields.length - 1);
    d.fields[i] = d.fields[i]!.replace(":", `${pick(r, OWS)}:`);
  },
  "many-fields": (r, d, limits) => {
    // Around the head limit: a count of short fields that lands near it.
    const n = Math.floor(limits.maxHeadBytes / 8) + int(r, -4, 4);
    for (let i = 0; i < n; i++) d.fields.push(`X${i % 1000}: v`);
  },
  "long-field": (r, d, limits) => {
    const head = render({ ...d, body: "" }).length;
    const room = limits.maxHeadBytes - head - "X-Long: \r\n".length;
    d.fields.push(`X-Long: ${"v".repeat(Math.max(0, room + int(r, -2, 2)))}`);
  },
  "chunk-edge": (r, d) => {
    d.fields = d.fields.filter((f) => !/^(content-length|transfer-encoding)/i.test(f));
    d.fields.push("Transfer-Encoding: chunked");
    d.body = pick(r, [
      "5\r\nhello\r\n0\r\n\r\n",
      "00000000000000005\r\nhello\r\n0\r\n\r\n",
      "0000000000000005\r\nhello\r\n0\r\n\r\n",
      "ffffffffffffffff\r\nx\r\n",
      "1fffffffffffff\r\nx\r\n",
      "20000000000000\r\nx\r\n",
      '5;ext=1;e2="a b"\r\nhello\r\n0\r\n\r\n',
      "5 \r\nhello\r\n0\r\n\r\n",
      "5\r\nhello0\r\n\r\n",
      "5\r\nhelloX\r\n0\r\n\r\n",
      "5\nhello\r\n0\r\n\r\n",
      "0x5\r\nhello\r\n0\r\n\r\n",
      "-5\r\nhello\r\n0\r\n\r\n",
      "\r\n5\r\nhello\r\n0\r\n\r\n",
      "A\r\n0123456789\r\n0\r\n\r\n",
      "a\r\n0123456789\r\n0\r\nT: 1\r\n\r\n",
      "0\r\nX: a\r\n b\r\n\r\n",
      "0\r\n\r\n",
      "0;\r\n\r\n",
      "",
    ]);
  },
};
const FIELD_MUTATION_NAMES = Object.keys(FIELD_MUTATIONS);

/** Byte-level mutations of the rendered wire. */
function mutateBytes(r: Random, wire: Buffer, tags: string[]): Buffer {
  const at = int(r, 0, Math.max(0, wire.length - 1));
  switch (int(r, 0, 4)) {
    case 0: {
      tags.push("flip");
      const out = Buffer.from(wire);
      if (out.length > 0) out[at] = r() < 0.5 ? pick(r, SPECIAL) : int(r, 0, 255);
      return out;
    }
    case 1:
      tags.push("insert");
      return Buffer.concat([wire.subarray(0, at), Buffer.of(pick(r, SPECIAL)), wire.subarray(at)]);
    case 2:
      tags.push("delete");
      return Buffer.concat([wire.subarray(0, at), wire.subarray(at + int(r, 1, 3))]);
    case 3: {
      tags.push("duplicate");
      const n = int(r, 1, 12);
      return Buffer.concat([
        wire.subarray(0, at + n),
        wire.subarray(at, at + n),
        wire.subarray(at + n),
      ]);
    }
    default: {
      tags.push("truncate");
      return wire.subarray(0, at);
    }
  }
}

/** One request: valid, or mutated once or twice (structure first, then bytes). */
function request(r: Random, opts: CaseOptions, limits: CaseLimits, tags: string[]): Buffer {
  const d = validDraft(r, opts, limits);
  tags.push("valid");
  const structural = r() < 0.5 ? int(r, 1, 2) : 0;
  for (let i = 0; i < structural; i++) {
    const name = pick(r, FIELD_MUTATION_NAMES);
    tags.push(name);
    FIELD_MUTATIONS[name]!(r, d, limits);
  }
  let wire: Buffer = Buffer.from(render(d), "latin1");
  if (opts.mutations === "bytes" && r() < 0.5) {
    for (let i = int(r, 1, 2); i > 0; i--) wire = mutateBytes(r, wire, tags);
  }
  return wire;
}

/** Case `index` of a run seeded `seed`: one to four pipelined requests, or random bytes. */
export function generateCase(
  seed: number,
  index: number,
  opts: CaseOptions,
  limits: CaseLimits,
): FuzzCase {
  const r = caseRandom(seed, index);
  const tags: string[] = [];
  if (opts.mutations === "bytes" && r() < 0.03) {
    tags.push("random-bytes");
    const out = Buffer.allocUnsafe(int(r, 1, 200));
    for (let i = 0; i < out.length; i++) out[i] = int(r, 0, 255);
    return { tags, wire: out };
  }
  const count = r() < 0.7 ? 1 : int(r, 2, 4);
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) tags.push("|");
    parts.push(request(r, opts, limits, tags));
  }
  return { tags, wire: Buffer.concat(parts) };
}

/** Cut points splitting `length` bytes into reads of 1..maxRead bytes. */
export function splitPoints(r: Random, length: number, maxRead: number): number[] {
  const cuts: number[] = [];
  for (let p = int(r, 1, maxRead); p < length; p += int(r, 1, maxRead)) cuts.push(p);
  return cuts;
}

/** `wire` cut at `cuts` (ascending). */
export function splitAt(wire: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    out.push(wire.subarray(from, c));
    from = c;
  }
  out.push(wire.subarray(from));
  return out;
}
