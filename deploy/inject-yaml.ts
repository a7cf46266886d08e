import { Document, parseAllDocuments } from "yaml";
import { InjectError, injectObject, type PodOutcome } from "./inject.js";
import type { InjectOptions } from "./sidecar-template.js";

export interface InjectedText {
  readonly text: string;
  readonly pods: readonly PodOutcome[];
}

/**
 * `remora inject` on a multi-document YAML stream: every document comes out in its place; those
 * without a pod to inject are printed byte for byte as they were read, injected ones are
 * re-serialised (keeping the comment above them). A document that is not valid YAML is an error naming it.
 */
export function injectYaml(text: string, options: InjectOptions, source = "input"): InjectedText {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) return { text, pods: [] }; // empty stream
  const pods: PodOutcome[] = [];
  const out: string[] = [];
  let segmentStart = 0;
  documents.forEach((doc, index) => {
    const error = doc.errors[0];
    if (error !== undefined) {
      throw new InjectError(`${source}: document ${index + 1}: ${error.message.split("\n")[0]}`);
    }
    // This document's own text, from the end of the previous one: its comments, its `---`.
    const segment = text.slice(segmentStart, doc.range[2]).replace(/^---[ \t]*\n/, "");
    segmentStart = doc.range[2];
    const result = injectObject(doc.toJS(), options);
    pods.push(...result.pods);
    if (result.pods.some((p) => p.injected)) {
      const injected = new Document(result.object, { aliasDuplicateObjects: false });
      injected.commentBefore = doc.commentBefore;
      out.push(injected.toString({ lineWidth: 0 }));
    } else if (segment.trim() !== "") {
      out.push(segment.endsWith("\n") ? segment : `${segment}\n`);
    }
  });
  return { text: out.join("---\n"), pods };
}
