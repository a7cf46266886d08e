/**
 * The codec's properties, checked in-process on one connection's input (issue 14):
 * - parsing throws nothing but HttpParseError;
 * - it is split-invariant: the same input fed whole, in random reads and byte by byte gives the
 *   same requests and the same verdict;
 * - every accepted request re-serialised for the upstream (serializeRequestHead) parses again
 *   with the same method, target and framing, and with no whitespace around its framing values.
 *
 * `readConnection` models how HttpSession consumes a connection: heads re-parsed from the start
 * of the pending bytes until complete, bodies by Content-Length or through the chunked decoder,
 * pipelined requests after each other, nothing read after a request that closes.
 */
import { type SerializedRequestHead, serializeRequestHead } from "../proxy/forward-headers.js";
import { ChunkedDecoder, type ChunkSink } from "../proxy/http/chunked.js";
import { HttpParseError } from "../proxy/http/errors.js";
import { PRESCAN_BYTES } from "../proxy/http/fields.js";
import type { HeadLimits, RequestHead } from "../proxy/http/head.js";
import { parseRequestHead } from "../proxy/http/request-parser.js";
import { type CaseLimits, type FuzzCase, int, type Random, splitAt, splitPoints } from "./cases.js";

/** One request the codec accepted, with its body as decoded. */
export interface ParsedRequest {
  readonly head: RequestHead;
  /** Payload (chunk-data concatenated), latin1. */
  body: string;
  /** The body's framing ended (Content-Length reached, last chunk and trailers read). */
  complete: boolean;
}

/**
 * How a connection's input ends: every byte used and the last request complete ("idle"), a
 * request that closes the connection ("closed"), waiting for more of a head or a body, or an
 * error with the status the client is answered.
 */
export type ConnectionEnd =
  | { readonly kind: "idle" | "closed" | "head-pending" | "body-pending" }
  | { readonly kind: "error"; readonly status: number; readonly reason: string };

export interface ConnectionVerdict {
  readonly requests: ParsedRequest[];
  readonly end: ConnectionEnd;
  /** Bytes of an incomplete head still held at the end. */
  readonly pendingHead: number;
}

class Collect implements ChunkSink {
  text = "";
  onChunkData(buf: Buffer, start: number, end: number): void {
    this.text += buf.toString("latin1", start, end);
  }
}

/** Reads one connection's input, delivered as `reads`, the way the session does. */
export function readConnection(reads: readonly Buffer[], limits: HeadLimits): ConnectionVerdict {
  const requests: ParsedRequest[] = [];
  let pending: Buffer = Buffer.alloc(0);
  let current: ParsedRequest | null = null;
  let remaining = 0;
  const decoder = new ChunkedDecoder();
  const sink = new Collect();
  let closed = false;
  for (const read of reads) {
    pending = pending.length === 0 ? read : Buffer.concat([pending, read]);
    for (;;) {
      if (closed || pending.length === 0) break;
      if (current === null) {
        let head: RequestHead | null;
        try {
          head = parseRequestHead(pending, 0, pending.length, limits);
        } catch (error) {
          if (!(error instanceof HttpParseError)) throw error;
          return { requests, end: errorEnd(error), pendingHead: 0 };
        }
        if (head === null) break;
        pending = pending.subarray(head.headLength);
        current = { head, body: "", complete: false };
        requests.push(current);
        if (head.chunked) {
          decoder.reset();
          sink.text = "";
        } else remaining = Math.max(0, head.contentLength);
      } else if (current.head.chunked) {
        let used: number;
        try {
          used = decoder.feed(pending, 0, pending.length, sink);
        } catch (error) {
          if (!(error instanceof HttpParseError)) throw error;
          current.body = sink.text;
          return { requests, end: errorEnd(error), pendingHead: 0 };
        }
        pending = pending.subarray(used);
        current.body = sink.text;
        if (!decoder.done) break;
      } else {
        const n = Math.min(remaining, pending.length);
        current.body += pending.toString("latin1", 0, n);
        pending = pending.subarray(n);
        remaining -= n;
        if (remaining > 0) break;
      }
      if (current.head.chunked ? decoder.done : remaining === 0) {
        current.complete = true;
        if (current.head.close) closed = true;
        current = null;
      }
    }
    if (closed) break;
  }
  // A request without a body is complete as soon as its head is.
  if (current !== null && !current.head.chunked && remaining === 0) {
    current.complete = true;
    if (current.head.close) closed = true;
    current = null;
  }
  const end: ConnectionEnd = closed
    ? { kind: "closed" }
    : current !== null
      ? { kind: "body-pending" }
      : pending.length > 0
        ? { kind: "head-pending" }
        : { kind: "idle" };
  return { requests, end, pendingHead: end.kind === "head-pending" ? pending.length : 0 };
}

function errorEnd(error: HttpParseError): ConnectionEnd {
  return { kind: "error", status: error.status, reason: error.reason };
}

/** What a verdict says, as a string two verdicts can be compared by. */
export function describeVerdict(v: ConnectionVerdict): string {
  const requests = v.requests.map((q) => ({
    method: q.head.method,
    target: q.head.target,
    headers: q.head.headers,
    contentLength: q.head.contentLength,
    chunked: q.head.chunked,
    close: q.head.close,
    body: q.body,
    complete: q.complete,
  }));
  return JSON.stringify({ requests, end: v.end });
}

const SERIALIZE_OPTIONS = {
  host: undefined,
  clientAddress: "127.0.0.1",
  proto: "http",
  expectHandled: false,
  upgrade: undefined,
  clientCert: undefined,
} as const;

/** The head remora would send upstream for `head`, or a reason it does not parse back. */
export function roundTripProblem(head: RequestHead, limits: HeadLimits): string | null {
  const out: SerializedRequestHead = { text: "", requestId: "", userAgent: "", forwardedFor: "" };
  serializeRequestHead(head, { ...SERIALIZE_OPTIONS, path: head.target }, out);
  // A head without Host goes out with an empty one (RFC 9112 §3.2), which our own parser
  // refuses as a request to route; it is checked here and given a name to parse the rest.
  let text = out.text;
  if (head.host === undefined) {
    if (!text.includes("\r\nhost: \r\n")) return `no empty Host forwarded: ${JSON.stringify(text)}`;
    text = text.replace("\r\nhost: \r\n", "\r\nhost: x\r\n");
  }
  const wire = Buffer.from(text, "latin1");
  let again: RequestHead | null;
  try {
    // The forwarded head may be longer than the client's (X-Forwarded-*, X-Request-Id).
    again = parseRequestHead(wire, 0, wire.length, {
      maxHeadBytes: limits.maxHeadBytes + 1024,
      maxTargetBytes: limits.maxTargetBytes,
    });
  } catch (error) {
    return `forwarded head does not parse: ${String(error)}: ${JSON.stringify(out.text)}`;
  }
  if (again === null) return `forwarded head is incomplete: ${JSON.stringify(out.text)}`;
  if (again.method !== head.method || again.target !== head.target) {
    return `forwarded request-line differs: ${again.method} ${again.target}`;
  }
  if (again.chunked !== head.chunked || again.contentLength !== head.contentLength) {
    return `forwarded framing differs: ${JSON.stringify(out.text)}`;
  }
  for (const line of out.text.split("\r\n")) {
    if (/^(content-length|transfer-encoding):/i.test(line) && /:\s*\S.*\s$|:\s\s|\t/.test(line)) {
      return `forwarded framing field not normalised: ${JSON.stringify(line)}`;
    }
  }
  return null;
}

/** A property that does not hold for one case, with what to replay. */
export interface CodecFailure {
  readonly property: string;
  readonly detail: string;
}

/**
 * Checks every codec property for `wire`; `r` picks the random reads. Returns the first that
 * fails, or null.
 */
export function checkCodec(wire: Buffer, limits: CaseLimits, r: Random): CodecFailure | null {
  let whole: ConnectionVerdict;
  try {
    whole = readConnection([wire], limits);
  } catch (error) {
    return { property: "throws only HttpParseError", detail: String(error) };
  }
  const expected = describeVerdict(whole);
  const splits: [string, Buffer[]][] = [
    ["random reads", splitAt(wire, splitPoints(r, wire.length, int(r, 1, 64)))],
  ];
  // Every boundary: byte by byte, for inputs small enough to afford the re-parsing.
  if (wire.length <= 600)
    splits.push(["byte by byte", splitAt(wire, splitPoints(r, wire.length, 1))]);
  for (const [how, reads] of splits) {
    let split: ConnectionVerdict;
    try {
      split = readConnection(reads, limits);
    } catch (error) {
      return { property: "throws only HttpParseError", detail: `${how}: ${String(error)}` };
    }
    const got = describeVerdict(split);
    if (got !== expected && !prescanDeferral(whole, split)) {
      return {
        property: "split-invariant",
        detail: `${how}:\n  whole ${expected}\n  split ${got}`,
      };
    }
  }
  for (const q of whole.requests) {
    const problem = roundTripProblem(q.head, limits);
    if (problem !== null) return { property: "forwarded head round-trips", detail: problem };
  }
  return null;
}

/**
 * The one documented way a verdict depends on the reads (request-parser.ts): an error in the
 * field lines of a head with more than PRESCAN_BYTES buffered is only reported once the head's
 * empty line arrives. So a head that read whole is still waiting, or has run past the head
 * limit (431), may have failed with 400 when read in small pieces. Both reject it; the requests
 * before it must agree.
 */
function prescanDeferral(a: ConnectionVerdict, b: ConnectionVerdict): boolean {
  const deferred = (v: ConnectionVerdict): boolean =>
    (v.end.kind === "head-pending" && v.pendingHead > PRESCAN_BYTES) ||
    (v.end.kind === "error" && v.end.reason === "HEAD_TOO_LARGE");
  const early = (v: ConnectionVerdict): boolean => v.end.kind === "error" && v.end.status === 400;
  if (!((deferred(a) && early(b)) || (deferred(b) && early(a)))) return false;
  const strip = (v: ConnectionVerdict) => describeVerdict({ ...v, end: { kind: "idle" } });
  return strip(a) === strip(b);
}

/**
 * A smaller input on which `fails` still holds: ranges deleted, halving their size down to one
 * byte (delta debugging's simplest form), bounded so a report never waits long.
 */
export function minimise(wire: Buffer, fails: (candidate: Buffer) => boolean): Buffer {
  let best = wire;
  let budget = 4000;
  for (let size = best.length >> 1; size >= 1 && budget > 0; size >>= 1) {
    let changed = true;
    while (changed && budget > 0) {
      changed = false;
      for (let at = 0; at + size <= best.length && budget > 0; at += size) {
        budget--;
        const candidate = Buffer.concat([best.subarray(0, at), best.subarray(at + size)]);
        if (fails(candidate)) {
          best = candidate;
          changed = true;
        }
      }
    }
  }
  return best;
}

/** The outcome of checking `count` generated cases. */
export interface CodecRun {
  readonly checked: number;
  readonly accepted: number;
  readonly rejected: number;
  readonly failures: { index: number; tags: string[]; failure: CodecFailure; minimal: Buffer }[];
}

export function runCodecCases(
  count: number,
  limits: CaseLimits,
  generate: (index: number) => FuzzCase,
  splitRandom: (index: number) => Random,
  maxFailures = 5,
): CodecRun {
  let accepted = 0;
  let rejected = 0;
  const failures: CodecRun["failures"] = [];
  for (let i = 0; i < count && failures.length < maxFailures; i++) {
    const c = generate(i);
    const failure = checkCodec(c.wire, limits, splitRandom(i));
    if (failure === null) {
      const v = readConnection([c.wire], limits);
      if (v.end.kind === "error") rejected++;
      else accepted++;
      continue;
    }
    const minimal = minimise(c.wire, (w) => {
      const f = checkCodec(w, limits, splitRandom(i));
      return f !== null && f.property === failure.property;
    });
    failures.push({ index: i, tags: c.tags, failure, minimal });
  }
  return { checked: count, accepted, rejected, failures };
}
