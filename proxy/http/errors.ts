/**
 * Why a message could not be parsed. `status` is what a client sees when the failing message is
 * a request (400, 414, 431, 501, 505); when it is a response the forwarding path answers 502.
 */
export class HttpParseError extends Error {
  override readonly name = "HttpParseError";
  readonly status: 400 | 414 | 431 | 501 | 505;
  /** Stable machine-readable reason, e.g. "CONTENT_LENGTH_WITH_TRANSFER_ENCODING". */
  readonly reason: string;

  constructor(status: HttpParseError["status"], reason: string, message: string) {
    // Malformed input is the sender's fault, not a fault in the code: no stack trace. Capturing
    // one is most of the cost of rejecting garbage (time and a few hundred bytes a request).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.status = status;
    this.reason = reason;
  }
}
