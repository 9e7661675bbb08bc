// What went wrong with a call, for a person: the message, and each field violation the gateway sent
// in its google.rpc.BadRequest detail.
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export interface Violation {
  field: string;
  description: string;
  reason: string;
}

export interface Failure {
  code: Code | null;
  message: string;
  violations: Violation[];
  // The same request may succeed when sent again (same request_id: never a second ticket).
  retryable: boolean;
}

const BAD_REQUEST = "google.rpc.BadRequest";
const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.ResourceExhausted,
  Code.Unknown, Code.Internal, Code.Aborted]);

export function failure(error: unknown): Failure {
  const e = ConnectError.from(error);
  const violations = e.details.flatMap((d) => ("desc" in d ? [] : d.type === BAD_REQUEST ? badRequest(d.value) : []));
  return { code: e.code, message: e.rawMessage || Code[e.code], violations, retryable: RETRYABLE.has(e.code) };
}

export function describe(f: Failure): string {
  switch (f.code) {
    case Code.Unauthenticated:
      return "The gateway refused the token. Sign out and sign in with a valid one.";
    case Code.PermissionDenied:
      return `This token may not do that: ${f.message}`;
    default:
      return f.message;
  }
}

// google/rpc/error_details.proto is not among protos/, and no registry of generated googleapis code
// is reachable from the build, so the two small messages are read off the wire by hand:
//   BadRequest { repeated FieldViolation field_violations = 1; }
//   FieldViolation { string field = 1; string description = 2; string reason = 3; ... }
function badRequest(bytes: Uint8Array): Violation[] {
  const found: Violation[] = [];
  try {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [number, wire] = reader.tag();
      if (number === 1 && wire === WireType.LengthDelimited) found.push(fieldViolation(reader.bytes()));
      else reader.skip(wire);
    }
  } catch {
    // a detail that does not parse adds nothing; the message still says what went wrong
  }
  return found;
}

function fieldViolation(bytes: Uint8Array): Violation {
  const v: Violation = { field: "", description: "", reason: "" };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [number, wire] = reader.tag();
    if (number === 1 && wire === WireType.LengthDelimited) v.field = reader.string();
    else if (number === 2 && wire === WireType.LengthDelimited) v.description = reader.string();
    else if (number === 3 && wire === WireType.LengthDelimited) v.reason = reader.string();
    else reader.skip(wire);
  }
  return v;
}
