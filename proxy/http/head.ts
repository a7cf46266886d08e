/**
 * The parsed shapes of HTTP/1.1 message heads (RFC 9112 §2–§6) as the codec hands them to the
 * forwarding path. Header fields are kept flat (`[name, value, name, value, ...]`) with the
 * names' original case, so re-serialising a head never allocates per-field objects.
 */

/** Framing and connection facts derived once while parsing, so the hot path never re-scans. */
interface MessageFraming {
  /** Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1;
  /** Flat list: even indexes hold field names as received, odd indexes their values, OWS trimmed. */
  readonly headers: string[];
  /** Parsed Content-Length, or -1 when absent. Never set together with `chunked`. */
  readonly contentLength: number;
  /** Transfer-Encoding is present and its final (and only accepted) coding is chunked. */
  readonly chunked: boolean;
  /** Connection: close was sent, or HTTP/1.0 without Connection: keep-alive. */
  readonly close: boolean;
  /**
   * Lower-cased tokens of every Connection field except `close` and `keep-alive`, which are
   * hop-by-hop field names to strip (RFC 9110 §7.6.1). Empty array when none.
   */
  readonly connectionTokens: string[];
  /** Bytes of the head, request or status line through the empty line's CRLF. */
  readonly headLength: number;
}

export interface RequestHead extends MessageFraming {
  readonly method: string;
  /** The request target exactly as sent (origin-form, absolute-form, authority-form or "*"). */
  readonly target: string;
  /** The single Host field's value, or undefined (only legal for HTTP/1.0). */
  readonly host: string | undefined;
  /** The Upgrade field's value when Connection also names `upgrade`; else undefined. */
  readonly upgrade: string | undefined;
  /** Expect: 100-continue was sent (case-insensitive). */
  readonly expectContinue: boolean;
}

export interface ResponseHead extends MessageFraming {
  readonly status: number;
  readonly reason: string;
}

/** Limits applied while parsing a head. */
export interface HeadLimits {
  /** Largest head in bytes (request/status line plus fields); larger gets 431 (requests). */
  readonly maxHeadBytes: number;
  /** Longest request target in bytes; longer gets 414. Ignored for responses. */
  readonly maxTargetBytes: number;
}

export const DEFAULT_HEAD_LIMITS: HeadLimits = {
  maxHeadBytes: 64 * 1024,
  maxTargetBytes: 8 * 1024,
};
