import type { Ticket } from "./gen/itsm/v1/ticket_pb";

// The platform's page for the ticket; only http(s) links are followed (the URL comes from the
// platform's configured base URL, but a link is no place to trust a scheme).
export function TicketLink({ ticket }: { ticket: Ticket }) {
  const label = ticket.externalKey || "(no key yet)";
  const url = safeUrl(ticket.url);
  if (!url) return <span className="key">{label}</span>;
  return (
    <a className="key" href={url} target="_blank" rel="noopener noreferrer">
      {label}
    </a>
  );
}

function safeUrl(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}
