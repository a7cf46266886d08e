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
    super(message);
    this.status = status;
    this.reason = reason;
  }
}
