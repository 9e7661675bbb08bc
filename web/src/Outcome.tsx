import type { Attempt } from "./creation";
import { TicketState } from "./gen/itsm/v1/common_pb";
import { describe } from "./errors";
import { OUTCOMES, outcomeCode, platformName } from "./labels";
import { TicketLink } from "./TicketLink";

// What the last Create did, announced to screen readers as it changes.
export function Outcome({ attempt, created }: { attempt: Attempt; created: boolean }) {
  return (
    <div className="outcome" role="status" aria-live="polite">
      {attempt.kind === "sending" && <p>Creating…</p>}
      {attempt.kind === "done" && <Done attempt={attempt} created={created} />}
      {attempt.kind === "failed" && (
        <div className="failure">
          <p>
            <strong>Not created.</strong> {describe(attempt.failure)}
          </p>
          {attempt.failure.retryable && (
            <p>Create again sends the same request: the gateway never opens a second ticket for it.</p>
          )}
        </div>
      )}
    </div>
  );
}

function Done({ attempt, created }: { attempt: Extract<Attempt, { kind: "done" }>; created: boolean }) {
  const { ticket, outcome } = attempt.result;
  if (ticket.state === TicketState.PENDING) {
    return (
      <p className="pending">
        Accepted, still being created on {platformName(ticket.platform)}. Create again asks for the
        outcome under the same request: it never sends a second ticket.
      </p>
    );
  }
  return (
    <div className="done" data-outcome={outcomeCode(outcome)}>
      <p>
        <strong>{OUTCOMES[outcome]}</strong> <code>{outcomeCode(outcome)}</code>
      </p>
      <p>
        <TicketLink ticket={ticket} /> on {platformName(ticket.platform)}
        {ticket.requestId && (
          <>
            {" "}
            (request <code>{ticket.requestId}</code>)
          </>
        )}
      </p>
      {created && <p className="hint">Change the form to create another ticket.</p>}
    </div>
  );
}
