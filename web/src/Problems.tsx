import type { Violation } from "./errors";

// The violations of one input, next to it; the input names this list in aria-describedby. A
// violation of another field (a rendered field this input feeds) names that field.
export function Problems({ id, violations, own }: { id: string; violations?: Violation[]; own?: string }) {
  if (!violations || violations.length === 0) return null;
  return (
    <ul className="problems" id={id}>
      {violations.map((v, i) => (
        <li key={i} data-field={v.field} data-reason={v.reason}>
          {v.field !== own && <code>{v.field}</code>} {v.description}
        </li>
      ))}
    </ul>
  );
}

// Props that tie an input to its problems, for assistive technology.
export function invalidProps(id: string, violations?: Violation[]) {
  const invalid = !!violations && violations.length > 0;
  return { "aria-invalid": invalid, "aria-describedby": invalid ? id : undefined };
}
