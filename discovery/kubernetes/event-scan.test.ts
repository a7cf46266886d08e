import { describe, expect, it } from "vitest";
import { seededRandom } from "../../lb/testing.js";
import { MAX_DEPTH, type ScannedEvent, scanWatchEvent } from "./event-scan.js";
import { serviceObject, sliceObject } from "./testing/fake-api.js";
import { SERVICE_NAME_LABEL } from "./wire.js";

// biome-ignore lint/suspicious/noExplicitAny: watch events are open-ended JSON here.
type Json = any;

/** What scanWatchEvent must answer for a line that JSON.parse gave `parsed`, by the contract. */
function expectedScan(parsed: Json, label: string): ScannedEvent | undefined {
  const own = (o: Json, key: string) => (Object.hasOwn(o, key) ? o[key] : undefined);
  const isObject = (v: Json) => typeof v === "object" && v !== null && !Array.isArray(v);
  const stringOrAbsent = (v: Json) => v === undefined || typeof v === "string";
  if (!isObject(parsed)) return undefined;
  const type = own(parsed, "type");
  const object = own(parsed, "object");
  if (typeof type !== "string" || !isObject(object)) return undefined;
  // Absent is fine, null is not (own() gives undefined only for absent: JSON has no undefined).
  const metadata = own(object, "metadata") === undefined ? {} : own(object, "metadata");
  if (!isObject(metadata)) return undefined;
  const labels = own(metadata, "labels") === undefined ? {} : own(metadata, "labels");
  if (!isObject(labels)) return undefined;
  const result = {
    type,
    name: own(metadata, "name"),
    namespace: own(metadata, "namespace"),
    resourceVersion: own(metadata, "resourceVersion"),
    label: own(labels, label),
  };
  const strings = [result.name, result.namespace, result.resourceVersion, result.label];
  return strings.every(stringOrAbsent) ? result : undefined;
}

/** JSON.parse's verdict: the expected scan, or "invalid" when it throws. */
function oracle(line: string, label = SERVICE_NAME_LABEL): ScannedEvent | undefined | "invalid" {
  let parsed: Json;
  try {
    parsed = JSON.parse(line);
  } catch {
    return "invalid";
  }
  return expectedScan(parsed, label);
}

/** An EndpointSlice as the fake API server stores it. */
function slice(name: string, endpoints: number, resourceVersion = "1234"): Json {
  const object = sliceObject(
    name,
    "default",
    "svc-0001",
    Array.from({ length: endpoints }, (_, i) => ({
      ip: `10.1.${i >> 8}.${i & 255}`,
      ready: i % 5 !== 0,
      pod: `svc-0001-7d9f8c6b5-${i.toString(36).padStart(5, "q")}`,
    })),
    { name: "http", port: 8080 },
  );
  return {
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
    ...object,
    metadata: {
      ...object.metadata,
      uid: "6f1c1a4e-2b0c-4f7e-9d6a-0b7c1e2d3f4a",
      creationTimestamp: "2025-03-01T10:00:00Z",
      resourceVersion,
    },
  };
}

/**
 * A slice as a real API server sends it (~5 KB): generateName, annotations, ownerReferences and
 * managedFields, with escaped JSON in an annotation that holds `"resourceVersion":"x"` and
 * `"name":"evil"` and the label's key, so an indexOf would be fooled.
 */
function realSlice(): Json {
  const base = slice("svc-0001-x7k2p", 10, "8812345");
  const lastApplied = JSON.stringify({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: "evil",
      namespace: "evil",
      resourceVersion: "x",
      labels: { [SERVICE_NAME_LABEL]: "evil" },
    },
  });
  return {
    kind: base.kind,
    apiVersion: base.apiVersion,
    metadata: {
      name: base.metadata.name,
      generateName: "svc-0001-",
      namespace: "default",
      uid: base.metadata.uid,
      resourceVersion: "8812345",
      generation: 42,
      creationTimestamp: base.metadata.creationTimestamp,
      labels: {
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        [SERVICE_NAME_LABEL]: "svc-0001",
        "app.kubernetes.io/name": "svc-0001",
      },
      annotations: {
        "endpoints.kubernetes.io/last-change-trigger-time": "2025-03-01T10:05:00Z",
        "kubectl.kubernetes.io/last-applied-configuration": `${lastApplied}\n`,
      },
      ownerReferences: [
        {
          apiVersion: "v1",
          kind: "Service",
          name: "svc-0001",
          uid: "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "discovery.k8s.io/v1",
          time: "2025-03-01T10:05:00Z",
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:addressType": {},
            "f:endpoints": {},
            "f:metadata": {
              "f:annotations": {
                ".": {},
                "f:endpoints.kubernetes.io/last-change-trigger-time": {},
              },
              "f:generateName": {},
              "f:labels": {
                ".": {},
                "f:endpointslice.kubernetes.io/managed-by": {},
                [`f:${SERVICE_NAME_LABEL}`]: {},
              },
              "f:ownerReferences": {
                ".": {},
                'k:{"uid":"0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"}': {},
              },
            },
            "f:ports": {},
          },
        },
        {
          manager: "kubectl-client-side-apply",
          operation: "Update",
          apiVersion: "discovery.k8s.io/v1",
          time: "2025-03-01T09:00:00Z",
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": {
              "f:annotations": { "f:kubectl.kubernetes.io/last-applied-configuration": {} },
            },
          },
        },
      ],
    },
    addressType: base.addressType,
    endpoints: base.endpoints.map((e: Json) => ({
      ...e,
      hints: { forZones: [{ name: "zone-a" }] },
    })),
    ports: [{ name: "http", protocol: "TCP", port: 8080, appProtocol: "http" }],
  };
}

const line = (event: Json) => JSON.stringify(event);
const event = (type: string, object: Json) => line({ type, object });

const sliceLine = event("MODIFIED", slice("svc-0001-x7k2p", 10));
const realLine = event("MODIFIED", realSlice());

describe("scanWatchEvent on real-shaped events", () => {
  it("reads type, name, namespace, resourceVersion and the label of a 10-endpoint slice", () => {
    expect(scanWatchEvent(sliceLine, SERVICE_NAME_LABEL)).toEqual({
      type: "MODIFIED",
      name: "svc-0001-x7k2p",
      namespace: "default",
      resourceVersion: "1234",
      label: "svc-0001",
    });
  });

  it("is not fooled by the same keys in annotations, managedFields or targetRefs", () => {
    expect(realLine.length).toBeGreaterThan(4000);
    expect(realLine).toContain('\\"resourceVersion\\":\\"x\\"');
    expect(scanWatchEvent(realLine, SERVICE_NAME_LABEL)).toEqual({
      type: "MODIFIED",
      name: "svc-0001-x7k2p",
      namespace: "default",
      resourceVersion: "8812345",
      label: "svc-0001",
    });
    // metadata last: endpoints' targetRef names and namespaces come first.
    const { metadata, ...rest } = realSlice();
    const reordered = event("ADDED", { ...rest, metadata: { ...metadata, namespace: "prod" } });
    expect(scanWatchEvent(reordered, SERVICE_NAME_LABEL)).toEqual({
      type: "ADDED",
      name: "svc-0001-x7k2p",
      namespace: "prod",
      resourceVersion: "8812345",
      label: "svc-0001",
    });
  });

  it("reads Services, BOOKMARKs, ERRORs and other labels as JSON.parse does", () => {
    const lines = [
      event("ADDED", {
        kind: "Service",
        apiVersion: "v1",
        ...serviceObject("web", "shop", [{ name: "http", port: 80 }]),
      }),
      event("DELETED", slice("web-abc12", 0)),
      event("BOOKMARK", {
        kind: "EndpointSlice",
        apiVersion: "discovery.k8s.io/v1",
        metadata: { resourceVersion: "9001" },
      }),
      event("ERROR", {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "too old resource version: 1 (2)",
        reason: "Expired",
        code: 410,
      }),
      event("SOMETHING-NEW", slice("x", 1)),
    ];
    for (const l of lines) {
      for (const label of [SERVICE_NAME_LABEL, "app.kubernetes.io/name", "", "constructor"]) {
        const expected = oracle(l, label);
        expect(expected).not.toBe("invalid");
        expect(expected).not.toBeUndefined();
        expect(scanWatchEvent(l, label)).toEqual(expected);
      }
    }
    expect(scanWatchEvent(lines[2] as string, SERVICE_NAME_LABEL)).toEqual({
      type: "BOOKMARK",
      name: undefined,
      namespace: undefined,
      resourceVersion: "9001",
      label: undefined,
    });
  });

  it("accepts every JSON whitespace: tab, LF, CR and space around every token", () => {
    const pretty = JSON.stringify(JSON.parse(realLine), null, "\t").replaceAll("\n", "\r\n ");
    expect(scanWatchEvent(` \t${pretty}\r\n `, SERVICE_NAME_LABEL)).toEqual(
      scanWatchEvent(realLine, SERVICE_NAME_LABEL),
    );
  });
});

describe("scanWatchEvent's fields", () => {
  const label = "app";
  const scan = (text: string) => scanWatchEvent(text, label);
  const result = (fields: Partial<ScannedEvent>): ScannedEvent => ({
    type: "ADDED",
    name: undefined,
    namespace: undefined,
    resourceVersion: undefined,
    label: undefined,
    ...fields,
  });
  const full = { name: "n", namespace: "ns", resourceVersion: "7", label: "web" };

  it("gives undefined for each absent field, and no result without type or object", () => {
    const meta = (m: string) => `{"type":"ADDED","object":{"kind":"X","metadata":${m}}}`;
    expect(
      scan(meta('{"name":"n","namespace":"ns","resourceVersion":"7","labels":{"app":"web"}}')),
    ).toEqual(result(full));
    expect(scan(meta('{"namespace":"ns","resourceVersion":"7","labels":{"app":"web"}}'))).toEqual(
      result({ ...full, name: undefined }),
    );
    expect(scan(meta('{"name":"n","resourceVersion":"7","labels":{"app":"web"}}'))).toEqual(
      result({ ...full, namespace: undefined }),
    );
    expect(scan(meta('{"name":"n","namespace":"ns","labels":{"app":"web"}}'))).toEqual(
      result({ ...full, resourceVersion: undefined }),
    );
    expect(
      scan(meta('{"name":"n","namespace":"ns","resourceVersion":"7","labels":{"x":"y"}}')),
    ).toEqual(result({ ...full, label: undefined }));
    expect(scan(meta('{"name":"n","namespace":"ns","resourceVersion":"7"}'))).toEqual(
      result({ ...full, label: undefined }),
    );
    expect(scan(meta("{}"))).toEqual(result({}));
    expect(scan('{"type":"ADDED","object":{}}')).toEqual(result({}));
    expect(scan('{"object":{"metadata":{"name":"n"}}}')).toBeUndefined();
    expect(scan('{"type":"ADDED"}')).toBeUndefined();
    expect(scan("{}")).toBeUndefined();
  });

  it("gives no result when a field, metadata or labels is of the wrong kind", () => {
    const wrong = [
      '{"type":1,"object":{}}',
      '{"type":null,"object":{}}',
      '{"type":["ADDED"],"object":{}}',
      '{"type":"ADDED","object":null}',
      '{"type":"ADDED","object":[]}',
      '{"type":"ADDED","object":"x"}',
      '{"type":"ADDED","object":{"metadata":null}}',
      '{"type":"ADDED","object":{"metadata":[]}}',
      '{"type":"ADDED","object":{"metadata":"m"}}',
      '{"type":"ADDED","object":{"metadata":{"name":5}}}',
      '{"type":"ADDED","object":{"metadata":{"name":null}}}',
      '{"type":"ADDED","object":{"metadata":{"namespace":{}}}}',
      '{"type":"ADDED","object":{"metadata":{"resourceVersion":1234}}}',
      '{"type":"ADDED","object":{"metadata":{"labels":null}}}',
      '{"type":"ADDED","object":{"metadata":{"labels":["app"]}}}',
      '{"type":"ADDED","object":{"metadata":{"labels":{"app":true}}}}',
      '{"type":"ADDED","object":{"metadata":{"labels":{"app":{"x":"web"}}}}}',
    ];
    for (const text of wrong) {
      expect(oracle(text, label), text).toBeUndefined();
      expect(scan(text), text).toBeUndefined();
    }
    // Non-strings elsewhere, and under other labels, are fine.
    expect(
      scan(
        '{"type":"ADDED","object":{"spec":{"name":5},"metadata":{"generation":3,"labels":{"other":1,"app":"web"}}}}',
      ),
    ).toEqual(result({ label: "web" }));
  });

  it("decodes escapes in values and keys as JSON.parse does", () => {
    const texts = [
      String.raw`{"type":"ADD\u0045D","object":{"metadata":{"name":"a\u0062c\n\"q\"\/\\\t\b\f\r","namespace":"\ud83d\ude00","resourceVersion":"\ud800x","labels":{"app":"w\u00e9b"}}}}`,
      String.raw`{"t\u0079pe":"ADDED","\u006fbject":{"m\u0065tadata":{"n\u0061me":"n","namespac\u0065":"ns","resourceV\u0065rsion":"7","l\u0061bels":{"\u0061pp":"web"}}}}`,
      String.raw`{"type":"ADDED","object":{"metadata":{"name":"\"n\"","labels":{"kubernetes.io\/service-name":"a\/b"}}}}`,
    ];
    for (const text of texts) {
      for (const l of [label, SERVICE_NAME_LABEL]) {
        const expected = oracle(text, l);
        expect(expected, text).not.toBeUndefined();
        expect(scanWatchEvent(text, l), text).toEqual(expected);
      }
    }
    expect(scan(texts[0] as string)?.name).toBe('abc\n"q"/\\\t\b\f\r');
    expect(scan(texts[1] as string)).toEqual(result(full));
    // A key that only matches once decoded, and a label asked for that needs escaping itself.
    expect(scanWatchEvent(texts[2] as string, SERVICE_NAME_LABEL)?.label).toBe("a/b");
    const quoted = String.raw`{"type":"ADDED","object":{"metadata":{"labels":{"a\"b":"v"}}}}`;
    expect(scanWatchEvent(quoted, 'a"b')?.label).toBe("v");
  });

  it("takes the last of duplicate keys at every level, as JSON.parse does", () => {
    const cases: [string, ScannedEvent | undefined][] = [
      ['{"type":"ADDED","type":"DELETED","object":{}}', result({ type: "DELETED" })],
      ['{"type":1,"type":"ADDED","object":{}}', result({})],
      ['{"type":"ADDED","type":1,"object":{}}', undefined],
      ['{"type":"ADDED","object":null,"object":{}}', result({})],
      ['{"type":"ADDED","object":{},"object":null}', undefined],
      [
        '{"type":"ADDED","object":{"metadata":{"name":"n","namespace":"ns"}},"object":{"metadata":{"resourceVersion":"7"}}}',
        result({ resourceVersion: "7" }),
      ],
      [
        '{"type":"ADDED","object":{"metadata":{"name":"n","labels":{"app":"web"}},"metadata":{"namespace":"ns"}}}',
        result({ namespace: "ns" }),
      ],
      [
        '{"type":"ADDED","object":{"metadata":null,"metadata":{"name":"n"}}}',
        result({ name: "n" }),
      ],
      ['{"type":"ADDED","object":{"metadata":{"name":"n"},"metadata":null}}', undefined],
      ['{"type":"ADDED","object":{"metadata":{"name":"a","name":"b"}}}', result({ name: "b" })],
      ['{"type":"ADDED","object":{"metadata":{"name":1,"name":"b"}}}', result({ name: "b" })],
      ['{"type":"ADDED","object":{"metadata":{"name":"a","name":1}}}', undefined],
      [
        '{"type":"ADDED","object":{"metadata":{"labels":{"app":"a"},"labels":{"x":"y"}}}}',
        result({}),
      ],
      [
        '{"type":"ADDED","object":{"metadata":{"labels":null,"labels":{"app":"b"}}}}',
        result({ label: "b" }),
      ],
      [
        '{"type":"ADDED","object":{"metadata":{"labels":{"app":"a","app":"b"}}}}',
        result({ label: "b" }),
      ],
      [
        '{"type":"ADDED","object":{"metadata":{"labels":{"app":[],"app":"b"}}}}',
        result({ label: "b" }),
      ],
      ['{"type":"ADDED","object":{"metadata":{"labels":{"app":"a","app":0}}}}', undefined],
    ];
    for (const [text, expected] of cases) {
      expect(oracle(text, label), text).toEqual(expected);
      expect(scan(text), text).toEqual(expected);
    }
  });

  it("gives no result for a top level that is not an object", () => {
    for (const text of ["[]", '"ADDED"', "1", "null", "true", '[{"type":"ADDED","object":{}}]']) {
      expect(oracle(text)).toBeUndefined();
      expect(scan(text)).toBeUndefined();
    }
  });
});

describe("scanWatchEvent on lines that are not ASCII, or long", () => {
  it("finds the fields after 2-, 3- and 4-byte characters and lone surrogates", () => {
    const before = "é Ģ € 😀 \ud800 \udc00 \u2028";
    const object = realSlice();
    object.metadata.annotations.note = before;
    object.metadata.name = `n-${before}`;
    object.metadata.labels[SERVICE_NAME_LABEL] = `😀${before}`;
    const text = event("ADDED", object);
    expect(scanWatchEvent(text, SERVICE_NAME_LABEL)).toEqual({
      type: "ADDED",
      name: `n-${before}`,
      namespace: "default",
      resourceVersion: "8812345",
      label: `😀${before}`,
    });
    // Raw in the line (JSON.stringify escapes lone surrogates), and escaped.
    const raw = `{"type":"ADDED","object":{"metadata":{"note":"\ud800Ģ","name":"a\udc00b\u{1F600}","namespace":"\\u00e9\ud800"}}}`;
    expect(oracle(raw)).toEqual(scanWatchEvent(raw, SERVICE_NAME_LABEL));
    expect(scanWatchEvent(raw, SERVICE_NAME_LABEL)?.name).toBe("a\udc00b\u{1F600}");
    expect(scanWatchEvent(raw, SERVICE_NAME_LABEL)?.namespace).toBe("é\ud800");
  });

  it("reads a label that is not ASCII, escaped or not", () => {
    // "Ã©" is é's UTF-8 bytes read as Latin-1: a byte comparison with the label would match it.
    const text = String.raw`{"type":"ADDED","object":{"metadata":{"labels":{"Ã©":"wrong","é":"right","\u00e9x":"x"}}}}`;
    expect(scanWatchEvent(text, "é")?.label).toBe("right");
    expect(scanWatchEvent(text, "éx")?.label).toBe("x");
    expect(scanWatchEvent(text, "Ã©")?.label).toBe("wrong");
    const lone = `{"type":"ADDED","object":{"metadata":{"labels":{"\ud800":"a","\ufffd":"b"}}}}`;
    expect(scanWatchEvent(lone, "\ud800")?.label).toBe("a");
    expect(scanWatchEvent(lone, "\ufffd")?.label).toBe("b");
  });

  it("rejects non-ASCII characters outside strings", () => {
    for (const text of [
      '{"type":"A","object":{}}\u00a0',
      '{"type":"A","object":{}é}',
      '{"type":"A","object":[😀]}',
    ]) {
      expect(oracle(text)).toBe("invalid");
      expect(scanWatchEvent(text, "app")).toBeUndefined();
    }
  });

  it("scans lines longer than its buffer, and short ones again after them", () => {
    for (const endpoints of [1000, 12_000]) {
      const text = event("MODIFIED", slice("big", endpoints, String(endpoints)));
      expect(text.length).toBeGreaterThan(endpoints * 100);
      expect(scanWatchEvent(text, SERVICE_NAME_LABEL)?.resourceVersion).toBe(String(endpoints));
      expect(scanWatchEvent(`${text.slice(0, -1)},}`, SERVICE_NAME_LABEL)).toBeUndefined();
      expect(scanWatchEvent(sliceLine, SERVICE_NAME_LABEL)?.name).toBe("svc-0001-x7k2p");
      expect(scanWatchEvent(sliceLine.slice(0, -1), SERVICE_NAME_LABEL)).toBeUndefined();
    }
  });

  it("scans lines whose last character may not fit the 64 KiB buffer", () => {
    // write() stops before a character that does not fit: the line must not be cut there.
    for (const prefix of ["", "x", "xy"]) {
      const head = `{"type":"ADDED","object":{"metadata":{"a":"${prefix}`;
      const fit = Math.floor((64 * 1024 - head.length) / 3);
      for (let count = fit - 3; count <= fit + 3; count++) {
        const text = `${head}${"€".repeat(count)}","name":"n"}}}`;
        expect(scanWatchEvent(text, "app")?.name, `${prefix.length} ${count}`).toBe("n");
        expect(scanWatchEvent(text.slice(0, -1), "app")).toBeUndefined();
      }
    }
  });
});

describe("scanWatchEvent rejects what JSON.parse rejects", () => {
  /** `valid` with `from` replaced by `to` at its first occurrence at or after `after`. */
  function edit(valid: string, from: string, to: string, after = 0): string {
    const at = valid.indexOf(from, after);
    if (at < 0) throw new Error(`${from} not in the line`);
    return valid.slice(0, at) + to + valid.slice(at + from.length);
  }
  const short =
    '{"type":"ADDED","object":{"metadata":{"name":"n","labels":{"app":"web"}},"n":[1,-2.5e+3,true,false,null,{}]}}';
  // Both where fields are read (metadata) and where values are only skipped (endpoints).
  const inSkipped = sliceLine.indexOf('"endpoints"');
  const invalid: Record<string, string[]> = {
    "trailing comma": [
      edit(short, "}}", ",}}"),
      edit(short, "null", "null,"),
      edit(short, '"web"', '"web",'),
      edit(sliceLine, '"zone-a"', '"zone-a",', inSkipped),
      edit(sliceLine, "]", ",]", inSkipped),
      `${short.slice(0, -1)},}`,
    ],
    "leading zeros": [
      edit(short, "1,", "01,"),
      edit(short, "-2.5", "-02.5"),
      edit(short, "1,", "00,"),
    ],
    "bad escape": [
      edit(short, '"n"', String.raw`"\x"`),
      edit(short, '"web"', String.raw`"\u12G4"`),
      edit(short, '"web"', String.raw`"\u123"`),
      edit(short, '"web"', String.raw`"\x0041"`),
      edit(short, '"web"', String.raw`"\U0041"`),
      edit(short, '"web"', String.raw`"\'"`),
      edit(short, '"web"', '"\\'),
      edit(sliceLine, '"zone-a"', String.raw`"zone\a"`, inSkipped),
    ],
    "raw control character in a string": [
      edit(short, '"n"', '"\u0000"'),
      edit(short, '"web"', '"w\u001fb"'),
      edit(short, '"web"', '"w\tb"'),
      edit(short, '"web"', '"w\nb"'),
      edit(short, '"app"', '"a\rpp"'),
      edit(sliceLine, '"zone-a"', '"zone\u0001a"', inSkipped),
    ],
    "bad number": [
      edit(short, "1,", "-,"),
      edit(short, "1,", "1.,"),
      edit(short, "1,", ".5,"),
      edit(short, "1,", "+1,"),
      edit(short, "-2.5e+3", "-2.5e"),
      edit(short, "-2.5e+3", "-2.5e+"),
      edit(short, "-2.5e+3", "-2.e3"),
      edit(short, "1,", "0x1,"),
      edit(short, "1,", "1_0,"),
      edit(short, "1,", "Infinity,"),
      edit(short, "1,", "NaN,"),
      edit(short, "1,", "- 1,"),
    ],
    "bad literal": [
      edit(short, "true", "tru"),
      edit(short, "false", "fals"),
      edit(short, "null", "nul"),
      edit(short, "true", "True"),
      edit(short, "null", "nulll"),
      edit(short, "true", "undefined"),
    ],
    "trailing garbage": [`${short}x`, `${short} }`, `${short}{}`, `${short}\u00a0`, `${short}\0`],
    "unbalanced brackets": [
      edit(short, "{}]", "{}"),
      edit(short, "[1", "[[1"),
      edit(short, "{}", "{]"),
      edit(short, "{}", "[}"),
      short.slice(0, -1),
      `${short}}`,
      edit(sliceLine, "]", "", inSkipped),
    ],
    "broken member": [
      edit(short, '"n":', '"n" '),
      edit(short, '"n":', "n:"),
      edit(short, '"n":', "'n':"),
      edit(short, '"web"', "'web'"),
      edit(short, '"web"', "web"),
      edit(short, ',"n"', ' "n"'),
      edit(short, '"name":"n",', '"name":"n",,'),
      edit(short, '"name"', "1"),
      edit(short, "[1,", "[,1,"),
      edit(short, "[1,", "[1 2,"),
    ],
    "whitespace JSON does not allow": [
      `\ufeff${short}`,
      `\u00a0${short}`,
      edit(short, ":", ":\u000b"),
      edit(short, ":", ":\f"),
      edit(short, ",", "\u2028,"),
    ],
    "nothing at all": ["", " ", "\n"],
  };

  for (const [kind, lines] of Object.entries(invalid)) {
    it(kind, () => {
      for (const text of lines) {
        expect(() => JSON.parse(text), JSON.stringify(text)).toThrow();
        expect(scanWatchEvent(text, "app"), JSON.stringify(text)).toBeUndefined();
      }
    });
  }

  it("every truncation of an event line (a cut stream)", () => {
    for (let end = 0; end < realLine.length; end++) {
      const text = realLine.slice(0, end);
      if (scanWatchEvent(text, SERVICE_NAME_LABEL) !== undefined) {
        throw new Error(`accepted a truncation at ${end}: …${text.slice(-40)}`);
      }
    }
  });

  it(`nesting deeper than ${MAX_DEPTH} containers, without a stack overflow`, () => {
    // The event itself is 1; `around` more containers around a value in `object`.
    const nested = (around: number, open = "[", close = "]") =>
      `{"type":"ADDED","object":{"metadata":{"name":"n"},"deep":${open.repeat(around)}1${close.repeat(around)}}}`;
    const deepest = nested(MAX_DEPTH - 2);
    expect(scanWatchEvent(deepest, "app")?.name).toBe("n");
    expect(scanWatchEvent(nested(MAX_DEPTH - 1), "app")).toBeUndefined();
    expect(() => JSON.parse(nested(MAX_DEPTH - 1))).not.toThrow(); // gives up, not "invalid"
    const objects = (around: number) =>
      `{"type":"ADDED","object":{"metadata":{"name":"n"},"deep":${'{"a":'.repeat(around)}1${"}".repeat(around)}}}`;
    expect(scanWatchEvent(objects(MAX_DEPTH - 2), "app")?.name).toBe("n");
    expect(scanWatchEvent(objects(MAX_DEPTH - 1), "app")).toBeUndefined();
    // The levels read count too: metadata and labels at the bound.
    const inLabels = `{"type":"ADDED","object":{"metadata":{"labels":{"app":"web","x":${"[".repeat(MAX_DEPTH - 4)}${"]".repeat(MAX_DEPTH - 4)}}}}}`;
    expect(scanWatchEvent(inLabels, "app")?.label).toBe("web");
    expect(scanWatchEvent(inLabels.replace("[", "[["), "app")).toBeUndefined();
    expect(scanWatchEvent(nested(1_000_000), "app")).toBeUndefined();
    expect(scanWatchEvent(nested(1_000_000, "{", "}"), "app")).toBeUndefined();
  });
});

describe("scanWatchEvent against JSON.parse (differential fuzz)", () => {
  const SEED = 0x5ca9_2025;
  const MUTANTS = 20_000;
  /** JSON-significant characters (the commonest thrice), and fragments that add members. */
  const ALPHABET = [
    ...'{}[]":,\\/0129-+.eEtrufnlasx \t\n\r\u0000\u001f\u007f\u00e9\u0122\u20ac\ud83d\udc00',
    "😀",
    ...',,"":{}[]',
    ',"name":"z"',
    ',"type":1',
    ',"labels":{}',
    '"metadata":null,',
    '"labels":null,',
    "null",
    "{}",
    "[]",
    String.raw`\u0041`,
    String.raw`\"`,
  ];
  const STRUCTURAL = '{}[]:,"';
  const seeds = [
    realLine,
    sliceLine,
    event("BOOKMARK", { kind: "EndpointSlice", metadata: { resourceVersion: "9001" } }),
    event("ERROR", { kind: "Status", metadata: {}, status: "Failure", code: 410 }),
    String.raw`{"t\u0079pe":"ADDED","object":{"metadata":{"name":"a\"b","name":"c","labels":{"kubernetes.io\/service-name":"s"}},"metadata":{"namespace":"ns","resourceVersion":"1","labels":{"kubernetes.io/service-name":"t"}}}}`,
    String.raw`{"type":"MODIFIED","object":{"spec":{"x":[1.5e-3,-0,0.25E+2,10.01,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9"]},"metadata":{"name":"n","namespace":"ns","resourceVersion":"2","labels":{"kubernetes.io/service-name":"svc"}}}}`,
  ];

  function mutate(random: () => number, text: string): string {
    const count = random() < 0.5 ? 1 : random() < 0.6 ? 2 : 3;
    for (let m = 0; m < count; m++) {
      // A quarter each: near the start (where type and metadata usually are), anywhere, at the
      // next structural character, and at the next container's end (trailing commas, members).
      const where = random();
      let at = Math.floor(random() * (where < 0.25 ? Math.min(text.length, 300) : text.length));
      const stops = where < 0.5 ? "" : where < 0.75 ? STRUCTURAL : "}]";
      if (stops !== "") while (at < text.length && !stops.includes(text[at] as string)) at++;
      const piece = ALPHABET[Math.floor(random() * ALPHABET.length)] as string;
      const op = random();
      if (op < 0.4) text = text.slice(0, at) + piece + text.slice(at);
      else if (op < 0.7) text = text.slice(0, at) + text.slice(at + 1);
      else text = text.slice(0, at) + piece + text.slice(at + 1);
    }
    return text;
  }

  it(`${MUTANTS.toLocaleString("en")} mutants of real lines: the same verdict and fields`, () => {
    const random = seededRandom(SEED);
    const tally = { invalid: 0, trailingCommas: 0, results: 0, changedFields: 0, unsure: 0 };
    const mismatches: string[] = [];
    const before = seeds.map((seed) => JSON.stringify(oracle(seed)));
    for (let n = 0; n < MUTANTS; n++) {
      const seed = seeds[n % seeds.length] as string;
      const mutant = mutate(random, seed);
      const expected = oracle(mutant);
      const scanned = scanWatchEvent(mutant, SERVICE_NAME_LABEL);
      if (expected === "invalid") {
        tally.invalid++;
        const commas = /,(\s*[}\]])/g;
        if (commas.test(mutant) && oracle(mutant.replace(commas, "$1")) !== "invalid") {
          tally.trailingCommas++;
        }
        if (scanned !== undefined) mismatches.push(`accepted invalid: ${JSON.stringify(mutant)}`);
        continue;
      }
      if (expected === undefined) tally.unsure++;
      else tally.results++;
      if (expected !== undefined && JSON.stringify(expected) !== before[n % seeds.length]) {
        tally.changedFields++;
      }
      // Exact, both ways: fuzzed lines nest far less than MAX_DEPTH, so "not sure" never applies.
      if (JSON.stringify(scanned) !== JSON.stringify(expected) || !sameKeys(scanned, expected)) {
        mismatches.push(
          `${JSON.stringify(scanned)} != ${JSON.stringify(expected)}: ${JSON.stringify(mutant)}`,
        );
      }
      if (mismatches.length >= 5) break;
    }
    expect(mismatches).toEqual([]);
    // Each verdict in bulk, or "no mismatch" would mean little.
    expect(tally.invalid).toBeGreaterThan(MUTANTS * 0.3);
    // Invalid only for a trailing comma: a scanner that allowed them would be caught.
    expect(tally.trailingCommas).toBeGreaterThan(50);
    expect(tally.results).toBeGreaterThan(MUTANTS * 0.15);
    expect(tally.changedFields).toBeGreaterThan(500);
    expect(tally.unsure).toBeGreaterThan(200);
  });
});

/** toEqual and JSON.stringify both ignore an undefined property; the result must have all five. */
function sameKeys(a: ScannedEvent | undefined, b: ScannedEvent | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Object.keys(a).join() === Object.keys(b).join();
}
