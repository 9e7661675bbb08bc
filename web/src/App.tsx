import { useMemo, useState } from "react";
import { makeApi } from "./api";
import { FreeformPanel } from "./FreeformPanel";
import { forgetToken, saveToken, savedToken } from "./session";
import { SignIn } from "./SignIn";
import { TemplatePanel } from "./TemplatePanel";
import { TicketList } from "./TicketList";

type Mode = "template" | "freeform";

export function App() {
  const [token, setToken] = useState<string | null>(savedToken);
  const api = useMemo(() => (token === null ? null : makeApi(token)), [token]);
  const [mode, setMode] = useState<Mode>("template");
  // Bumped after every create: the list reloads and shows the new ticket.
  const [version, setVersion] = useState(0);

  if (api === null) {
    return (
      <SignIn
        onSignedIn={(t) => {
          saveToken(t);
          setToken(t);
        }}
      />
    );
  }
  const created = () => setVersion((v) => v + 1);
  return (
    <>
      <header className="top">
        <h1>itsm-gateway</h1>
        <button
          type="button"
          onClick={() => {
            forgetToken();
            setToken(null);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <section aria-labelledby="create-title" className="create">
          <h2 id="create-title">Create a ticket</h2>
          <div className="modes" role="group" aria-label="How">
            <button type="button" aria-pressed={mode === "template"} onClick={() => setMode("template")}>
              From a template
            </button>
            <button type="button" aria-pressed={mode === "freeform"} onClick={() => setMode("freeform")}>
              Free-form
            </button>
          </div>
          {mode === "template" ? (
            <TemplatePanel api={api} onCreated={created} />
          ) : (
            <FreeformPanel api={api} onCreated={created} />
          )}
        </section>
        <section aria-labelledby="tickets-title" className="tickets">
          <h2 id="tickets-title">Tickets</h2>
          <TicketList api={api} version={version} />
        </section>
      </main>
    </>
  );
}
