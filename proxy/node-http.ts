import type * as Http from "node:http";
import { createRequire } from "node:module";

/**
 * node:http, loaded through require. An ESM import of a built-in module reads every one of its
 * exports, and since Node 22 node:http exports `WebSocket`, `CloseEvent` and `MessageEvent` as
 * getters that load Node's bundled undici: about 14 MB of memory at rest (of remora's ~80) for
 * classes remora never uses. require() leaves those getters alone. Type-only imports of
 * node:http are fine anywhere.
 */
export const http: typeof Http = createRequire(import.meta.url)("node:http");
