// The gateway's tickets, newest first: platform, status and SLA filters, paged by page_token.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "react";
import { type Api, READ_TIMEOUT_MS } from "./api";
import { type Failure, describe, failure } from "./errors";
import { Platform, SlaState, TicketStatus } from "./gen/itsm/v1/common_pb";
import type { Sla } from "./gen/itsm/v1/common_pb";
import type { Ticket } from "./gen/itsm/v1/ticket_pb";
import { PLATFORMS, SLA_STATES, STATUSES, platformName, slaName, statusName } from "./labels";
import { TicketLink } from "./TicketLink";

const PAGE_SIZE = 20;

interface Filters {
  platform: Platform;
  status: TicketStatus;
  sla: SlaState;
}

export function TicketList({ api, version }: { api: Api; version: number }) {
  const [filters, setFilters] = useState<Filters>({
    platform: Platform.UNSPECIFIED, status: TicketStatus.UNSPECIFIED, sla: SlaState.UNSPECIFIED,
  });
  // Tokens of the pages before this one (page_token only goes forward), and this page's.
  const [previous, setPrevious] = useState<string[]>([]);
  const [token, setToken] = useState("");
  const [page, setPage] = useState<{ tickets: Ticket[]; next: string } | null>(null);
  const [error, setError] = useState<Failure | null>(null);
  const [refreshes, setRefreshes] = useState(0);

  useEffect(() => {
    let current = true;
    api.tickets
      .listTickets(
        { pageSize: PAGE_SIZE, pageToken: token, platform: filters.platform, status: filters.status, slaState: filters.sla },
        { timeoutMs: READ_TIMEOUT_MS },
      )
      .then(
        (r) => {
          if (!current) return;
          setPage({ tickets: r.tickets, next: r.nextPageToken });
          setError(null);
        },
        (e: unknown) => current && setError(failure(e)),
      );
    return () => {
      current = false;
    };
  }, [api, filters, token, version, refreshes]);

  const filter = (change: Partial<Filters>) => {
    // A page token belongs to its filters: a new filter starts at the first page.
    setFilters((f) => ({ ...f, ...change }));
    setPrevious([]);
    setToken("");
  };

  return (
    <div className="ticket-list">
      <div className="filters" role="group" aria-label="Filters">
        <Select id="filter-platform" label="Platform" value={filters.platform} options={PLATFORMS}
                onChange={(v) => filter({ platform: v })} />
        <Select id="filter-status" label="Status" value={filters.status} options={STATUSES}
                onChange={(v) => filter({ status: v })} />
        <Select id="filter-sla" label="SLA" value={filters.sla} options={SLA_STATES}
                onChange={(v) => filter({ sla: v })} />
        <button type="button" onClick={() => setRefreshes((n) => n + 1)}>Refresh</button>
      </div>
      {error && <p className="failure" role="alert">{describe(error)}</p>}
      {page && page.tickets.length === 0 && <p>No tickets match.</p>}
      {page && page.tickets.length > 0 && (
        <table>
          <caption className="visually-hidden">Tickets, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Ticket</th>
              <th scope="col">Summary</th>
              <th scope="col">Platform</th>
              <th scope="col">Status</th>
              <th scope="col">SLA</th>
              <th scope="col">Created</th>
              <th scope="col">Template / job</th>
            </tr>
          </thead>
          <tbody>
            {page.tickets.map((t) => (
              <tr key={t.id} data-ticket-id={t.id}>
                <td><TicketLink ticket={t} /></td>
                <td className="summary">{t.fields.summary ?? ""}</td>
                <td>{platformName(t.platform)}</td>
                <td>{statusName(t.status, t.state)}</td>
                <td><SlaBadge sla={t.sla} /></td>
                <td>{t.createTime ? <Time date={timestampDate(t.createTime)} /> : ""}</td>
                <td className="origin">{[t.templateName, t.jobId].filter(Boolean).join(" · ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={previous.length === 0} onClick={() => {
          setToken(previous[previous.length - 1]);
          setPrevious((p) => p.slice(0, -1));
        }}>
          Previous page
        </button>
        <button type="button" disabled={!page?.next} onClick={() => {
          if (!page?.next) return;
          setPrevious((p) => [...p, token]);
          setToken(page.next);
        }}>
          Next page
        </button>
      </nav>
    </div>
  );
}

function Select<T extends number>(props: {
  id: string; label: string; value: T; options: [T, string][]; onChange: (value: T) => void;
}) {
  return (
    <div className="field">
      <label htmlFor={props.id}>{props.label}</label>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange(Number(e.target.value) as T)}>
        <option value={0}>Any</option>
        {props.options.map(([value, title]) => (
          <option key={value} value={value}>{title}</option>
        ))}
      </select>
    </div>
  );
}

// The SLA state in words (never colour alone) and the next unmet target's due time.
function SlaBadge({ sla }: { sla?: Sla }) {
  const state = sla?.state ?? SlaState.UNSPECIFIED;
  const due = sla && !sla.acknowledgedTime ? sla.responseDueTime : sla && !sla.resolvedTime ? sla.resolutionDueTime : undefined;
  const what = sla && !sla.acknowledgedTime ? "respond" : "resolve";
  return (
    <>
      <span className={`badge sla-${SlaState[state].toLowerCase()}`}>{slaName(state)}</span>
      {due && state !== SlaState.MET && (
        <span className="due">
          {what} by <Time date={timestampDate(due)} />
        </span>
      )}
    </>
  );
}

function Time({ date }: { date: Date }) {
  return (
    <time dateTime={date.toISOString()}>
      {date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" })}
    </time>
  );
}
