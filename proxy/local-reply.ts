import { ERRORS, type ErrorCode } from "./errors.js";

const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** Standard reason phrase for a status remora generates itself. */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "Unknown";
}

// Local replies are pre-serialised once per (code, keep-alive) so error paths allocate nothing.
const replies = new Map<string, Buffer>();

/** Bytes of a local reply's body (its text and a newline; the texts are ASCII). */
export function localReplyBodyBytes(code: ErrorCode): number {
  return ERRORS[code].body.length + 1;
}

/** The full bytes of a local reply: status line, fields, a short plain-text body. */
export function localReply(code: ErrorCode, keepAlive: boolean): Buffer {
  const key = keepAlive ? code : `${code}!close`;
  let bytes = replies.get(key);
  if (bytes === undefined) {
    const { status, flag, body } = ERRORS[code];
    const text = `${body}\n`;
    bytes = Buffer.from(
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n` +
        "content-type: text/plain; charset=utf-8\r\n" +
        `content-length: ${Buffer.byteLength(text)}\r\n` +
        `x-remora-response-flags: ${flag}\r\n` +
        (keepAlive ? "" : "connection: close\r\n") +
        `\r\n${text}`,
      "latin1",
    );
    replies.set(key, bytes);
  }
  return bytes;
}
