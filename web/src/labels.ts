// Words for the contract's enums, for people.
import { CreateOutcome, Platform, SlaState, TicketState, TicketStatus } from "./gen/itsm/v1/common_pb";

export const PLATFORMS: [Platform, string][] = [
  [Platform.SERVICENOW, "ServiceNow"],
  [Platform.JIRA, "Jira"],
];

export function platformName(p: Platform): string {
  return PLATFORMS.find(([value]) => value === p)?.[1] ?? "Unknown platform";
}

export const STATUSES: [TicketStatus, string][] = [
  [TicketStatus.OPEN, "Open"],
  [TicketStatus.IN_PROGRESS, "In progress"],
  [TicketStatus.RESOLVED, "Resolved"],
  [TicketStatus.CLOSED, "Closed"],
  [TicketStatus.CANCELLED, "Cancelled"],
];

export function statusName(s: TicketStatus, state: TicketState): string {
  if (state === TicketState.PENDING) return "Being created";
  if (state === TicketState.FAILED) return "Creation failed";
  return STATUSES.find(([value]) => value === s)?.[1] ?? "Not known yet";
}

export const SLA_STATES: [SlaState, string][] = [
  [SlaState.ON_TRACK, "On track"],
  [SlaState.AT_RISK, "At risk"],
  [SlaState.BREACHED, "Breached"],
  [SlaState.MET, "Met"],
];

export function slaName(s: SlaState): string {
  return SLA_STATES.find(([value]) => value === s)?.[1] ?? "No SLA";
}

export const OUTCOMES: Record<CreateOutcome, string> = {
  [CreateOutcome.UNSPECIFIED]: "Done",
  [CreateOutcome.CREATED]: "Created a new ticket",
  [CreateOutcome.ATTACHED]: "Attached to the open ticket with this dedup key",
  [CreateOutcome.REOPENED]: "Reopened the resolved ticket with this dedup key",
  [CreateOutcome.REPLAYED]: "Already created by an earlier attempt of this form: nothing new was sent",
};

// The enum's own name, as the contract spells it (CREATE_OUTCOME_CREATED), for people who script it.
export function outcomeCode(o: CreateOutcome): string {
  return `CREATE_OUTCOME_${CreateOutcome[o]}`;
}
