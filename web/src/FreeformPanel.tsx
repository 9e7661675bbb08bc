// Create from canonical fields: each field checked by the gateway as you type, then CreateTicket.
import { useEffect, useMemo, useRef, useState } from "react";
import { type Api, CREATE_TIMEOUT_MS, READ_TIMEOUT_MS } from "./api";
import { useCreation } from "./creation";
import { type Failure, type Violation, describe, failure } from "./errors";
import { baseField, groupBy, unique } from "./fields";
import { Platform } from "./gen/itsm/v1/common_pb";
import { PLATFORMS } from "./labels";
import { Outcome } from "./Outcome";
import { Problems, invalidProps } from "./Problems";
import { Input } from "./TemplatePanel";
import { useDebounced } from "./useDebounced";

const VALIDATE_DELAY_MS = 300;
// Shown for every platform: most tickets want one, and no platform refuses it.
const ALWAYS = ["summary", "description"];

interface Row {
  key: number; // stable across renames, for React and the inputs' ids
  name: string;
  value: string;
}

export function FreeformPanel({ api, onCreated }: { api: Api; onCreated: () => void }) {
  const [platform, setPlatform] = useState<Platform>(Platform.SERVICENOW);
  return (
    <div className="freeform-panel">
      <div className="field">
        <label htmlFor="freeform-platform">Platform</label>
        <select id="freeform-platform" value={platform} onChange={(e) => setPlatform(Number(e.target.value))}>
          {PLATFORMS.map(([value, title]) => (
            <option key={value} value={value}>{title}</option>
          ))}
        </select>
      </div>
      <FreeformForm key={platform} api={api} platform={platform} onCreated={onCreated} />
    </div>
  );
}

function FreeformForm({ api, platform, onCreated }: { api: Api; platform: Platform; onCreated: () => void }) {
  const next = useRef(0);
  const row = (name: string): Row => ({ key: next.current++, name, value: "" });
  const [rows, setRows] = useState<Row[]>(() => ALWAYS.map(row));
  const [jobId, setJobId] = useState("");
  const [dedupKey, setDedupKey] = useState("");
  const [checked, setChecked] = useState<Violation[] | null>(null);
  const [checkError, setCheckError] = useState<Failure | null>(null);

  // The platform's required fields, learnt from the gateway itself: an empty dry run names them.
  useEffect(() => {
    api.tickets.validateTicket({ platform, fields: {} }, { timeoutMs: READ_TIMEOUT_MS }).then(
      (r) => {
        const required = r.violations.filter((v) => v.reason === "REQUIRED").map((v) => baseField(v.field));
        setRows((old) => [...old, ...required.filter((n) => !old.some((o) => o.name === n)).map(row)]);
      },
      () => undefined, // the dry run below reports any problem with the gateway
    );
    // Once per platform: the form is keyed by it.
  }, [api, platform]);

  const fields = useMemo(() => {
    const out: Record<string, string> = {};
    for (const r of rows) if (r.name.trim() !== "" && r.value !== "") out[r.name.trim()] = r.value;
    return out;
  }, [rows]);
  const formKey = JSON.stringify([platform, fields, jobId, dedupKey]);
  const checking = useDebounced(JSON.stringify(fields), VALIDATE_DELAY_MS);

  useEffect(() => {
    let current = true;
    api.tickets.validateTicket({ platform, fields: JSON.parse(checking) }, { timeoutMs: READ_TIMEOUT_MS }).then(
      (r) => {
        if (!current) return;
        setChecked(r.violations);
        setCheckError(null);
      },
      (e: unknown) => current && setCheckError(failure(e)),
    );
    return () => {
      current = false;
    };
  }, [api, platform, checking]);

  const creation = useCreation(formKey, async (requestId) => {
    const r = await api.tickets.createTicket(
      { platform, requestId, jobId, dedupKey, fields },
      { timeoutMs: CREATE_TIMEOUT_MS },
    );
    onCreated();
    if (!r.ticket) throw new Error("the gateway answered without a ticket");
    return { ticket: r.ticket, outcome: r.outcome };
  });

  const failed = creation.attempt.kind === "failed" ? creation.attempt.failure.violations : [];
  const all = unique([...(checked ?? []), ...failed]);
  const names = new Set(rows.map((r) => r.name.trim()));
  const byField = groupBy(all, (v) => [baseField(v.field)]);
  const elsewhere = all.filter((v) => !names.has(baseField(v.field)) && v.field !== "job_id" && v.field !== "dedup_key");
  const duplicates = new Set(rows.map((r) => r.name.trim()).filter((n, i, all) => n !== "" && all.indexOf(n) !== i));

  const update = (key: number, change: Partial<Row>) =>
    setRows((old) => old.map((r) => (r.key === key ? { ...r, ...change } : r)));

  return (
    <form
      className="create-form"
      method="post"
      onSubmit={(e) => {
        e.preventDefault();
        creation.create();
      }}
      aria-label="Free-form ticket"
    >
      <div className="rows">
        {rows.map((r, i) => {
          const name = r.name.trim();
          const mine: Violation[] = [
            ...(byField.get(name) ?? []),
            ...(duplicates.has(name) ? [{ field: name, description: "is listed twice: the last value wins", reason: "DUPLICATE" }] : []),
          ];
          const problems = `row-${r.key}-problems`;
          return (
            <div key={r.key} className={mine.length ? "row-input bad" : "row-input"}>
              <div className="field name">
                <label htmlFor={`row-${r.key}-name`}>Field {i + 1}</label>
                <input id={`row-${r.key}-name`} type="text" value={r.name} spellCheck={false}
                       onChange={(e) => update(r.key, { name: e.target.value })} />
              </div>
              <div className="field value">
                <label htmlFor={`row-${r.key}-value`}>{name || `Value of field ${i + 1}`}</label>
                {name === "description" ? (
                  <textarea id={`row-${r.key}-value`} rows={3} value={r.value} {...invalidProps(problems, mine)}
                            onChange={(e) => update(r.key, { value: e.target.value })} />
                ) : (
                  <input id={`row-${r.key}-value`} type="text" value={r.value} {...invalidProps(problems, mine)}
                         onChange={(e) => update(r.key, { value: e.target.value })} />
                )}
                <Problems id={problems} violations={mine} own={name} />
              </div>
              <button type="button" className="remove" aria-label={`Remove field ${name || i + 1}`}
                      onClick={() => setRows((old) => old.filter((o) => o.key !== r.key))}>
                Remove
              </button>
            </div>
          );
        })}
        <button type="button" onClick={() => setRows((old) => [...old, row("")])}>Add a field</button>
      </div>
      {elsewhere.length > 0 && (
        <div className="elsewhere">
          <p>Also:</p>
          <Problems id="freeform-other-problems" violations={elsewhere} />
        </div>
      )}
      {checkError && <p className="failure">{describe(checkError)}</p>}
      {checked !== null && checked.length === 0 && <p className="valid">Valid for this platform.</p>}
      <Input id="freeform-job-id" label="Job id" own="job_id" value={jobId} onChange={setJobId}
             violations={all.filter((v) => v.field === "job_id")} />
      <Input id="freeform-dedup-key" label="Dedup key" own="dedup_key" value={dedupKey} onChange={setDedupKey}
             hint="optional: while a ticket opened under this key is open, a create attaches to it"
             violations={all.filter((v) => v.field === "dedup_key")} />
      <div className="actions">
        <button type="submit" disabled={creation.created} aria-busy={creation.attempt.kind === "sending"}>
          Create ticket
        </button>
        <span className="request-id">
          request <code>{creation.requestId}</code>
        </span>
      </div>
      <Outcome attempt={creation.attempt} created={creation.created} />
    </form>
  );
}
