import { HttpParseError } from "./errors.js";

/**
 * Every `HttpParseError.reason` the codec throws, with its message. One registry so reasons stay
 * stable and unique; messages are constants so a throw allocates nothing but the error.
 */
export const PARSE_REASONS = {
  BARE_LF: "line ends in LF without CR (RFC 9112 §2.2)",
  BARE_CR: "CR not followed by LF (RFC 9112 §2.2)",
  HEAD_TOO_LARGE: "message head exceeds the size limit",
  URI_TOO_LONG: "request-target exceeds the size limit",
  INVALID_REQUEST_LINE: "malformed request-line (RFC 9112 §3)",
  REQUEST_LINE_WHITESPACE: "request-line parts not separated by exactly one SP (RFC 9112 §3)",
  INVALID_METHOD: "method is not a token (RFC 9110 §9.1)",
  INVALID_TARGET: "request-target has a byte outside visible ASCII (RFC 9112 §3.2)",
  INVALID_VERSION: "malformed HTTP-version (RFC 9112 §2.3)",
  UNSUPPORTED_HTTP_VERSION: "only HTTP/1.0 and HTTP/1.1 are supported",
  INVALID_STATUS_LINE: "malformed status-line (RFC 9112 §4)",
  INVALID_STATUS: "status code outside 100-599 (RFC 9110 §15)",
  INVALID_REASON_PHRASE: "reason-phrase has a forbidden byte (RFC 9112 §4)",
  OBS_FOLD: "obsolete line folding (RFC 9112 §5.2)",
  EMPTY_FIELD_NAME: "field line without a name (RFC 9112 §5)",
  INVALID_FIELD_NAME: "field name is not a token (RFC 9110 §5.1)",
  WHITESPACE_BEFORE_COLON: "whitespace between field name and colon (RFC 9112 §5.1)",
  MISSING_COLON: "field line without a colon (RFC 9112 §5)",
  INVALID_FIELD_VALUE: "field value has a control byte (RFC 9110 §5.5)",
  INVALID_CONTENT_LENGTH: "Content-Length is not 1*DIGIT (RFC 9110 §8.6)",
  CONTENT_LENGTH_TOO_LARGE: "Content-Length has more than 15 digits",
  CONFLICTING_CONTENT_LENGTH: "Content-Length values differ (RFC 9112 §6.3)",
  CONTENT_LENGTH_WITH_TRANSFER_ENCODING:
    "both Content-Length and Transfer-Encoding (RFC 9112 §6.1, request smuggling)",
  TRANSFER_ENCODING_HTTP10: "Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1)",
  INVALID_TRANSFER_ENCODING: "Transfer-Encoding element is not a bare token (RFC 9112 §6.1)",
  EMPTY_TRANSFER_CODING: "empty element in Transfer-Encoding",
  DUPLICATE_CHUNKED: "chunked applied more than once (RFC 9112 §6.1)",
  CHUNKED_NOT_FINAL: "chunked is not the final transfer coding (RFC 9112 §6.3)",
  UNKNOWN_TRANSFER_CODING: "transfer coding not implemented (RFC 9112 §6.1)",
  MISSING_HOST: "HTTP/1.1 request without Host (RFC 9112 §3.2)",
  MULTIPLE_HOST: "more than one Host field (RFC 9112 §3.2)",
  EMPTY_HOST: "empty Host",
  INVALID_HOST: "Host is not uri-host[:port] (RFC 9110 §7.2)",
  INVALID_CONNECTION: "Connection element is not a token (RFC 9110 §7.6.1)",
  CONNECTION_NAMES_FRAMING_FIELD:
    "Connection names Host, Content-Length or Transfer-Encoding (RFC 9110 §7.6.1)",
  INVALID_CHUNK_SIZE: "chunk-size is not 1*HEXDIG (RFC 9112 §7.1)",
  CHUNK_SIZE_OVERFLOW: "chunk-size too large",
  INVALID_CHUNK_EXTENSION: "malformed chunk-ext (RFC 9112 §7.1.1)",
  CHUNK_EXTENSION_TOO_LARGE: "chunk-ext exceeds the size limit",
  CHUNK_DATA_OVERRUN: "chunk-data not followed by CRLF (RFC 9112 §7.1)",
  TRAILERS_TOO_LARGE: "trailer section exceeds the size limit",
} as const;

export type ParseReason = keyof typeof PARSE_REASONS;

export function parseError(status: HttpParseError["status"], reason: ParseReason): HttpParseError {
  return new HttpParseError(status, reason, PARSE_REASONS[reason]);
}
