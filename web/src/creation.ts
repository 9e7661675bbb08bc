// The Create button's state machine, shared by both forms: one request_id per filled form, one call
// at a time, and no second create of a form that already made its ticket.
import { useRef, useState } from "react";
import type { CreateOutcome } from "./gen/itsm/v1/common_pb";
import { TicketState } from "./gen/itsm/v1/common_pb";
import type { Ticket } from "./gen/itsm/v1/ticket_pb";
import { type Failure, failure } from "./errors";
import { newRequestId } from "./requestId";

export interface Created {
  ticket: Ticket;
  outcome: CreateOutcome;
}

export type Attempt =
  | { kind: "idle" }
  | { kind: "sending" }
  | { kind: "done"; result: Created }
  | { kind: "failed"; failure: Failure };

interface State {
  key: string; // the form as sent: any change makes a new request_id
  requestId: string;
  attempt: Attempt;
  created: boolean; // this form made its ticket: Create waits for a change
}

export interface Creation {
  requestId: string;
  attempt: Attempt;
  created: boolean;
  create: () => void;
}

export function useCreation(formKey: string, send: (requestId: string) => Promise<Created>): Creation {
  const [state, setState] = useState<State>(() => ({
    key: formKey, requestId: newRequestId(), attempt: { kind: "idle" }, created: false,
  }));
  // A click while a call is out does nothing: state updates land a render later, a ref at once.
  const sending = useRef(false);

  let current = state;
  if (state.key !== formKey) {
    // The form changed: a new request_id, and the last answer no longer describes it (React's
    // "adjust state while rendering" pattern: the next render sees it at once).
    current = { key: formKey, requestId: newRequestId(), attempt: keepResult(state.attempt), created: false };
    setState(current);
  }

  const create = () => {
    if (sending.current || current.created) return;
    sending.current = true;
    const { key, requestId } = current;
    setState((s) => ({ ...s, attempt: { kind: "sending" } }));
    send(requestId).then(
      (result) => {
        // A ticket still PENDING is not settled: the same request_id asks again, never re-sends.
        const settled = result.ticket.state !== TicketState.PENDING;
        setState((s) => ({
          ...s,
          attempt: { kind: "done", result },
          requestId: settled && s.key === key ? newRequestId() : s.requestId,
          created: settled && s.key === key,
        }));
      },
      (error: unknown) => setState((s) => ({ ...s, attempt: { kind: "failed", failure: failure(error) } })),
    ).finally(() => {
      sending.current = false;
    });
  };

  return { requestId: current.requestId, attempt: current.attempt, created: current.created, create };
}

// After an edit the outcome of the last create stays in view (it happened); an error goes (it was
// about the form as it was).
function keepResult(attempt: Attempt): Attempt {
  return attempt.kind === "done" || attempt.kind === "sending" ? attempt : { kind: "idle" };
}
