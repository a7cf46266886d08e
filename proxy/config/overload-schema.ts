/**
 * `overload:` — overload protection (overload/, docs/operations.md#overload-protection): global,
 * across listeners. Applies on reload.
 */
import * as z from "zod";
import { integer, MAX_UINT32 } from "./fields.js";

export const overloadSchema = z
  .strictObject({
    /**
     * Open downstream connections across all listeners; past it a new connection is closed at
     * once. Unset: half of the descriptor limit less a reserve of 64 (overload/descriptor-limit.ts).
     */
    maxDownstreamConnections: integer(1, MAX_UINT32, "a connection count").optional(),
    /**
     * Heap in MiB (V8's used heap plus Buffers) past which new requests get 503 OM and keep-alive
     * is off, until it falls under 95% of it. Unset: no heap action.
     */
    maxHeapMb: integer(1, 1024 * 1024, "a size in MiB").optional(),
  })
  .prefault({});

export type OverloadConfig = z.infer<typeof overloadSchema>;
