/**
 * The path authorization judges, and the inbound listener then forwards: the request target's
 * path normalised as Istio's default mesh config does (`pathNormalization: BASE`, Envoy's
 * `normalize_path`, RFC 3986 §6.2.2), so `/api/../admin` is judged as `/admin` and the app gets
 * the path that was judged, never another spelling of it:
 *
 *  - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded and other
 *    percent-encodings upper-cased (§6.2.2.1, §6.2.2.2): `/%61dmin` is `/admin`;
 *  - dot segments are removed (§5.2.4): `/a/./b/../c` is `/a/c`.
 *
 * Like BASE, it does not merge slashes (`//admin` stays), decode `%2F` or `%5C`, or turn `\`
 * into `/`. The query is never normalised nor matched: `paths` match what comes before `?`.
 */

/** `target` with its path normalised; the same string when it already is (the common case). */
export function normalizeTarget(target: string): string {
  const query = target.indexOf("?");
  const end = query < 0 ? target.length : query;
  if (target.charCodeAt(0) !== 47 /* / */ || !mayNeedNormalizing(target, end)) return target;
  const path = removeDotSegments(normalizePercentEncoding(target.slice(0, end)));
  return query < 0 ? path : path + target.slice(query);
}

/** The path of a (normalised) target: everything before `?`. */
export function pathOf(target: string): string {
  const query = target.indexOf("?");
  return query < 0 ? target : target.slice(0, query);
}

/** A `%`, or a `.` starting a segment, before `end`. */
function mayNeedNormalizing(target: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 37 /* % */) return true;
    if (c === 46 /* . */ && target.charCodeAt(i - 1) === 47) return true;
  }
  return false;
}

const PERCENT = /%([0-9A-Fa-f]{2})/g;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

function normalizePercentEncoding(path: string): string {
  return path.replace(PERCENT, (encoded: string, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : encoded.toUpperCase();
  });
}

/** RFC 3986 §5.2.4 for an absolute path (starts with `/`). */
export function removeDotSegments(path: string): string {
  const input = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < input.length; i++) {
    const segment = input[i]!;
    const last = i === input.length - 1;
    if (segment === ".") {
      if (last) out.push("");
    } else if (segment === "..") {
      out.pop();
      if (last) out.push("");
    } else out.push(segment);
  }
  return `/${out.join("/")}`;
}
