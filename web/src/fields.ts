// Names: violations name fields ("summary", "labels[1]", "variables.error.message"); template texts
// name variables ("{error.message}", with "{{" and "}}" for literal braces).
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Violation } from "./errors";

const VARIABLE_PREFIX = "variables.";
const PLACEHOLDER = /\{\{|\}\}|\{([^{}]+)\}/g;

// "labels[1]" -> "labels": a list element's violation belongs to the list's input.
export function baseField(field: string): string {
  const bracket = field.indexOf("[");
  return bracket === -1 ? field : field.slice(0, bracket);
}

// "variables.error.message" -> "error.message"; null for a violation of anything else.
export function variableOf(field: string): string | null {
  return field.startsWith(VARIABLE_PREFIX) ? field.slice(VARIABLE_PREFIX.length) : null;
}

// The variables a template text uses, in order, each once.
export function placeholders(text: string): string[] {
  const found = new Set<string>();
  for (const match of text.matchAll(PLACEHOLDER)) {
    if (match[1] !== undefined) found.add(match[1].trim());
  }
  return [...found];
}

// {"error.message": "x", "pipeline": "etl"} -> {"error": {"message": "x"}, "pipeline": "etl"}: the
// gateway reaches nested values with dotted names. Empty inputs are left out, so a missing variable
// is reported as missing rather than rendered empty.
export function nestedVariables(values: Record<string, string>): JsonObject {
  const root: JsonObject = {};
  for (const [name, value] of Object.entries(values)) {
    if (value === "") continue;
    const parts = name.split(".");
    let node: JsonObject = root;
    for (const part of parts.slice(0, -1)) {
      const next: JsonValue | undefined = node[part];
      if (next === undefined || typeof next !== "object" || next === null || Array.isArray(next)) {
        node[part] = {};
      }
      node = node[part] as JsonObject;
    }
    node[parts[parts.length - 1]] = value;
  }
  return root;
}

// Violations grouped by the key the page shows them under.
export function groupBy(violations: Violation[], key: (v: Violation) => string[]): Map<string, Violation[]> {
  const groups = new Map<string, Violation[]>();
  for (const v of violations) {
    for (const k of key(v)) groups.set(k, [...(groups.get(k) ?? []), v]);
  }
  return groups;
}

// Each violation once: a create refused for what the preview already shows says it again.
export function unique(violations: Violation[]): Violation[] {
  const seen = new Set<string>();
  return violations.filter((v) => {
    const key = `${v.field}\u0000${v.reason}\u0000${v.description}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}
