import { formatAddress, parseAddress } from "../proxy/config/address.js";
import type { ServiceConfig } from "../proxy/config/schema.js";
import type { Endpoint } from "./endpoint.js";
import type { ServiceRegistry } from "./registry.js";
import type { ServiceEndpoints } from "./update.js";

/** The `services` of the config file: published at start, and again on each config reload. */
export class StaticSource {
  readonly id = "static";
  readonly #registry: ServiceRegistry;
  #services: readonly ServiceConfig[];

  constructor(registry: ServiceRegistry, services: readonly ServiceConfig[]) {
    this.#registry = registry;
    this.#services = services;
    registry.registerSource(this.id);
  }

  start(): void {
    this.#registry.apply(this.id, { kind: "reset", services: serviceEndpoints(this.#services) });
    this.#registry.markSynced(this.id);
  }

  /**
   * A reloaded config's services as one reset: services left out are withdrawn, and only
   * services whose endpoints changed are republished (see ServiceRegistry).
   */
  update(services: readonly ServiceConfig[]): void {
    this.#services = services;
    this.#registry.apply(this.id, { kind: "reset", services: serviceEndpoints(services) });
  }
}

/** Validated service entries (config or discovery file) → what sources emit. Always ready. */
export function serviceEndpoints(services: readonly ServiceConfig[]): ServiceEndpoints[] {
  return services.map((service) => ({
    name: service.name,
    namespace: service.namespace,
    endpoints: service.endpoints.map((endpoint): Endpoint => {
      // Already validated by the schema, so this cannot throw.
      const { host, port } = parseAddress(endpoint.address);
      return Object.freeze({
        id: formatAddress(host, port),
        host,
        port,
        weight: endpoint.weight,
        labels: Object.freeze({ ...endpoint.labels }),
        ready: true,
      });
    }),
  }));
}
