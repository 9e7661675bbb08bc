// Sign in: the token is checked with one read call before it is kept (in sessionStorage only).
import { useState } from "react";
import { Code } from "@connectrpc/connect";
import { READ_TIMEOUT_MS, makeApi } from "./api";
import { type Failure, describe, failure } from "./errors";

export function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Failure | null>(null);

  const submit = (e: React.FormEvent) => {
    // Never a real form submission: the token must not travel in a URL or a request body.
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    const candidate = token.trim();
    makeApi(candidate)
      .templates.listTemplates({}, { timeoutMs: READ_TIMEOUT_MS })
      .then(
        () => onSignedIn(candidate),
        (err: unknown) => {
          setError(failure(err));
          setBusy(false);
        },
      );
  };

  return (
    <main className="sign-in">
      <h1>itsm-gateway</h1>
      <form method="post" onSubmit={submit} aria-labelledby="sign-in-title">
        <h2 id="sign-in-title">Sign in</h2>
        <div className="field">
          <label htmlFor="token">Bearer token</label>
          <span className="hint" id="token-hint">
            A caller token from the gateway's tokens file. Leave it empty for a gateway that runs without
            one (<code>make run</code>). It is kept in this tab only, until you sign out or close it.
          </span>
          <input id="token" type="password" autoComplete="off" spellCheck={false} value={token}
                 aria-describedby="token-hint" onChange={(e) => setToken(e.target.value)} />
        </div>
        <button type="submit" aria-busy={busy}>Sign in</button>
        {error && (
          <p className="failure" role="alert">
            {error.code === Code.Unauthenticated ? "The gateway refused this token." : describe(error)}
          </p>
        )}
      </form>
    </main>
  );
}
