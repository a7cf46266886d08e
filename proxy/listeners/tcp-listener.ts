import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { EMPTY_PICK_CONTEXT } from "../../lb/balancer.js";
import { noteUpstreamConnectError } from "../../overload/descriptor-errors.js";
import { type ConnectionGate, NO_OVERLOAD } from "../../overload/overload.js";
import type { Cluster } from "../cluster.js";
import type { ExchangeReporter } from "../exchange.js";
import { emptyRecord } from "../exchange.js";
import { ListenerSockets } from "./accept.js";

export interface TcpListenerOptions {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Cluster key ("name.namespace") of the service the bytes go to. */
  readonly service: string;
  readonly cluster: (key: string) => Cluster | undefined;
  readonly reporter: ExchangeReporter;
  /** Close a connection with no bytes either way for this long; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Told about each connection's life, for Istio's TCP metrics (proxy/metrics/exchanges.ts). */
  readonly observer?: TcpConnectionObserver | undefined;
  /** Overload protection's connection cap (overload/); default: none. */
  readonly overload?: ConnectionGate;
}

/** Watches TCP connections (the listener never imports metrics: it calls this). */
export interface TcpConnectionObserver {
  /** A connection arrived for `cluster` (its key) and `endpoint` (its id, "" when none). */
  start(listener: string, cluster: string, endpoint: string, client: Socket): TcpConnectionTally;
}

export interface TcpConnectionTally {
  /** The upstream connection is up. */
  established(): void;
  /** The connection is over; `flags` are Envoy's response flags ("-" for none). */
  end(flags: string): void;
}

const NO_TALLY: TcpConnectionTally = { established() {}, end() {} };

/** Opaque TCP: one endpoint chosen per connection, bytes piped both ways with backpressure. */
export class TcpListener {
  #options: TcpListenerOptions;
  #listening: ListenerSockets;
  #sockets = new Set<Socket>();
  /** Downstream connections accepted since start (metrics). */
  accepted = 0;
  /** Connections closed at once by overload protection's connection cap (metrics). */
  rejected = 0;
  /** Accept errors the listening sockets reported, by code (metrics). */
  readonly acceptErrors = new Map<string, number>();
  readonly #gate: ConnectionGate;

  constructor(options: TcpListenerOptions) {
    this.#options = options;
    this.#gate = options.overload ?? NO_OVERLOAD;
    this.#listening = new ListenerSockets(
      () => createServer({ allowHalfOpen: true, noDelay: true }, this.#onConnection),
      (error) => {
        const code = error.code ?? "unknown";
        this.acceptErrors.set(code, (this.acceptErrors.get(code) ?? 0) + 1);
        this.#gate.acceptFailed(options.name, code);
      },
    );
  }

  get connections(): number {
    return this.#sockets.size;
  }

  listen(): Promise<AddressInfo> {
    return this.#listening.listen(this.#options.address, this.#options.port);
  }

  /** Stop accepting; open connections carry on until either side closes. */
  drain(): void {
    this.#listening.close();
  }

  close(): void {
    this.#listening.close();
    for (const socket of this.#sockets) socket.destroy();
  }

  #onConnection = (client: Socket): void => {
    const options = this.#options;
    // Destroyed in the connection callback: no read callback has run, nothing was handed on.
    if (!this.#gate.admit(options.name)) {
      this.rejected++;
      client.destroy();
      return;
    }
    this.accepted++;
    const record = emptyRecord(options.name);
    record.startMs = Date.now();
    const started = performance.now();
    this.#sockets.add(client);
    const cluster = options.cluster(options.service);
    const endpoint = cluster?.pick(EMPTY_PICK_CONTEXT);
    record.cluster = options.service;
    const tally =
      options.observer?.start(options.name, options.service, endpoint?.id ?? "", client) ??
      NO_TALLY;
    const finish = (flags: string): void => {
      if (record.durationMs !== 0) return;
      tally.end(flags);
      record.flags = flags;
      record.durationMs = performance.now() - started || Number.MIN_VALUE;
      record.requestBytes = client.bytesRead;
      record.responseBytes = client.bytesWritten;
      options.reporter.report(record);
    };
    client.on("close", () => {
      this.#sockets.delete(client);
      this.#gate.release();
    });
    if (cluster === undefined || endpoint === undefined) {
      client.on("error", () => {});
      client.destroy();
      finish(cluster === undefined ? "NR" : "UH");
      return;
    }
    record.endpoint = endpoint.id;
    cluster.stats.requests++;
    cluster.stats.active++;
    cluster.onStart(endpoint);
    const connectTimeoutMs = cluster.settings.pool.connectTimeoutMs;
    const upstream = connect({ host: endpoint.host, port: endpoint.port, allowHalfOpen: true });
    upstream.setNoDelay(true);
    upstream.setTimeout(connectTimeoutMs);
    let connected = false;
    let ended = false;
    const end = (ok: boolean, flags: string): void => {
      if (ended) return;
      ended = true;
      cluster.stats.active--;
      cluster.onEnd(endpoint, ok);
      finish(flags);
    };
    upstream.once("connect", () => {
      connected = true;
      tally.established();
      upstream.setTimeout(options.idleTimeoutMs);
      // pipe() carries backpressure both ways and, with allowHalfOpen, half-closes too.
      client.pipe(upstream);
      upstream.pipe(client);
    });
    upstream.on("timeout", () => {
      upstream.destroy();
      client.destroy();
      end(false, connected ? "-" : "UF");
    });
    upstream.on("error", (error: NodeJS.ErrnoException) => {
      if (!connected) noteUpstreamConnectError(error);
      client.destroy();
      end(false, connected ? "UC" : "UF");
    });
    client.on("error", () => {
      upstream.destroy();
      end(connected, "DC");
    });
    upstream.on("close", () => {
      if (!client.destroyed && client.writableLength === 0) client.end();
      end(connected, connected ? "-" : "UF");
    });
    client.on("close", () => {
      upstream.destroy();
      end(connected, "-");
    });
  };
}
