// Create from a template: pick one, fill its variables, watch the rendered fields, create.
import { useEffect, useMemo, useState } from "react";
import { type Api, CREATE_TIMEOUT_MS, READ_TIMEOUT_MS } from "./api";
import { useCreation } from "./creation";
import { type Failure, type Violation, describe, failure } from "./errors";
import { baseField, groupBy, nestedVariables, placeholders, unique, variableOf } from "./fields";
import type { Platform } from "./gen/itsm/v1/common_pb";
import type { Template } from "./gen/itsm/v1/template_service_pb";
import { PLATFORMS, platformName } from "./labels";
import { Outcome } from "./Outcome";
import { Problems, invalidProps } from "./Problems";
import { useDebounced } from "./useDebounced";

const PREVIEW_DELAY_MS = 300;
const JOB = "job.id";

interface Preview {
  platform: Platform;
  fields: Record<string, string>;
  violations: Violation[];
}

export function TemplatePanel({ api, onCreated }: { api: Api; onCreated: () => void }) {
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [listError, setListError] = useState<Failure | null>(null);
  const [selected, setSelected] = useState("");
  const [chosen, setChosen] = useState<Template | null>(null);

  useEffect(() => {
    api.templates.listTemplates({}, { timeoutMs: READ_TIMEOUT_MS }).then(
      (r) => setTemplates(r.templates),
      (e: unknown) => setListError(failure(e)),
    );
  }, [api]);

  useEffect(() => {
    if (!selected) return;
    let current = true;
    // GetTemplate: the form follows the template as the gateway has it now.
    api.templates.getTemplate({ name: selected }, { timeoutMs: READ_TIMEOUT_MS }).then(
      (r) => current && setChosen(r.template ?? null),
      (e: unknown) => current && setListError(failure(e)),
    );
    return () => {
      current = false; // a quicker second choice wins over a slow first one
    };
  }, [api, selected]);

  return (
    <div className="template-panel">
      {listError && <p className="failure" role="alert">{describe(listError)}</p>}
      {templates === null && !listError && <p>Loading templates…</p>}
      {templates !== null && <TemplatePicker templates={templates} chosen={selected} onChoose={setSelected} />}
      {chosen && chosen.name === selected && <TemplateForm key={chosen.name} api={api} template={chosen} onCreated={onCreated} />}
    </div>
  );
}

function TemplatePicker(props: { templates: Template[]; chosen: string; onChoose: (name: string) => void }) {
  if (props.templates.length === 0) return <p>No templates are configured.</p>;
  return (
    <div className="picker">
      {PLATFORMS.map(([platform, title]) => {
        const mine = props.templates.filter((t) => t.platform === platform);
        if (mine.length === 0) return null;
        return (
          <fieldset key={platform}>
            <legend>{title}</legend>
            {mine.map((t) => (
              <div key={t.name} className="choice">
                <input
                  type="radio"
                  id={`template-${t.name}`}
                  name="template"
                  value={t.name}
                  checked={props.chosen === t.name}
                  onChange={() => props.onChoose(t.name)}
                  aria-describedby={`about-${t.name}`}
                />
                <label htmlFor={`template-${t.name}`} className="choice-name">{t.name}</label>
                <span className="choice-about" id={`about-${t.name}`}>{t.description}</span>
              </div>
            ))}
          </fieldset>
        );
      })}
    </div>
  );
}

function TemplateForm({ api, template, onCreated }: { api: Api; template: Template; onCreated: () => void }) {
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(template.requiredVariables.map((name) => [name, ""])),
  );
  const [jobId, setJobId] = useState("");
  const [dedupKey, setDedupKey] = useState("");
  const [preview, setPreview] = useState<Preview | null>(null);
  const [previewError, setPreviewError] = useState<Failure | null>(null);

  const variables = useMemo(() => nestedVariables(values), [values]);
  const formKey = JSON.stringify([template.name, variables, jobId, dedupKey]);
  const rendering = useDebounced(JSON.stringify([variables, jobId]), PREVIEW_DELAY_MS);

  useEffect(() => {
    let current = true;
    const [vars, job] = JSON.parse(rendering) as [typeof variables, string];
    api.templates.renderTemplate({ name: template.name, variables: vars, jobId: job }, { timeoutMs: READ_TIMEOUT_MS }).then(
      (r) => {
        if (!current) return;
        setPreview({ platform: r.platform, fields: r.fields, violations: r.violations });
        setPreviewError(null);
      },
      (e: unknown) => current && setPreviewError(failure(e)),
    );
    return () => {
      current = false; // an older preview answering late must not replace a newer one
    };
  }, [api, template.name, rendering]);

  const creation = useCreation(formKey, async (requestId) => {
    const r = await api.tickets.createTicketFromTemplate(
      { templateName: template.name, requestId, jobId, variables, dedupKey },
      { timeoutMs: CREATE_TIMEOUT_MS },
    );
    onCreated();
    if (!r.ticket) throw new Error("the gateway answered without a ticket");
    return { ticket: r.ticket, outcome: r.outcome };
  });

  // Which inputs feed each rendered field: a field's violation shows next to each of them.
  const feeds = useMemo(() => {
    const map = new Map<string, string[]>();
    for (const [field, text] of Object.entries(template.fields)) map.set(field, placeholders(text));
    return map;
  }, [template]);
  const failed = creation.attempt.kind === "failed" ? creation.attempt.failure.violations : [];
  const all = unique([...(preview?.violations ?? []), ...failed]);
  const byInput = groupBy(all, (v) => {
    if (v.field === "job_id") return [JOB];
    if (v.field === "dedup_key") return ["dedup_key"];
    const variable = variableOf(v.field);
    if (variable !== null) return [variable];
    return feeds.get(baseField(v.field)) ?? [];
  });
  const byField = groupBy(all, (v) => (variableOf(v.field) === null ? [baseField(v.field)] : []));

  const set = (name: string, value: string) => setValues((old) => ({ ...old, [name]: value }));

  return (
    <form
      className="create-form"
      method="post"
      onSubmit={(e) => {
        e.preventDefault();
        creation.create();
      }}
      aria-labelledby="template-form-title"
    >
      <h3 id="template-form-title">
        {template.name} <span className="platform">{platformName(template.platform)}</span>
      </h3>
      <p className="about">{template.description}</p>
      <div className="columns">
        <div className="inputs">
          {template.requiredVariables.map((name) => (
            <Input
              key={name}
              id={`var-${name}`}
              label={name}
              own={`variables.${name}`}
              value={values[name] ?? ""}
              onChange={(v) => set(name, v)}
              violations={byInput.get(name)}
              multiline={prose(feeds, name)}
            />
          ))}
          <Input id="job-id" label="Job id" hint="{job.id} in the template" own="job_id" value={jobId}
                 onChange={setJobId} violations={byInput.get(JOB)} />
          <Input id="dedup-key" label="Dedup key" own="dedup_key" value={dedupKey} onChange={setDedupKey}
                 hint="optional: while a ticket opened under this key is open, a create attaches to it"
                 violations={byInput.get("dedup_key")} />
          <div className="actions">
            <button type="submit" disabled={creation.created} aria-busy={creation.attempt.kind === "sending"}>
              Create ticket
            </button>
            <span className="request-id">
              request <code data-testid="request-id">{creation.requestId}</code>
            </span>
          </div>
          <Outcome attempt={creation.attempt} created={creation.created} />
        </div>
        <section className="preview" aria-labelledby="preview-title">
          <h4 id="preview-title">Preview</h4>
          {previewError && <p className="failure">{describe(previewError)}</p>}
          {preview && <PreviewTable preview={preview} byField={byField} />}
        </section>
      </div>
    </form>
  );
}

// A variable that only feeds the description is prose: a text area.
function prose(feeds: Map<string, string[]>, name: string): boolean {
  const fed = [...feeds].filter(([, uses]) => uses.includes(name)).map(([field]) => field);
  return fed.length > 0 && fed.every((field) => field === "description");
}

function PreviewTable({ preview, byField }: { preview: Preview; byField: Map<string, Violation[]> }) {
  const names = Object.keys(preview.fields).sort();
  const clean = preview.violations.length === 0;
  return (
    <>
      <p className={clean ? "valid" : "invalid"} aria-live="polite">
        {clean ? "Ready to create." : `${preview.violations.length} problem(s) to fix.`}
      </p>
      <dl className="rendered">
        {names.map((name) => (
          <div key={name} className={byField.has(name) ? "row bad" : "row"}>
            <dt>{name}</dt>
            <dd>
              <span className="value">{preview.fields[name]}</span>
              <Problems id={`preview-${name}`} violations={byField.get(name)} own={name} />
            </dd>
          </div>
        ))}
      </dl>
    </>
  );
}

interface InputProps {
  id: string;
  label: string;
  own: string;
  value: string;
  onChange: (value: string) => void;
  violations?: Violation[];
  hint?: string;
  multiline?: boolean;
}

export function Input({ id, label, own, value, onChange, violations, hint, multiline }: InputProps) {
  const problems = `${id}-problems`;
  const common = { id, value, ...invalidProps(problems, violations) };
  return (
    <div className={violations?.length ? "field bad" : "field"}>
      <label htmlFor={id}>{label}</label>
      {hint && <span className="hint">{hint}</span>}
      {multiline ? (
        <textarea {...common} rows={3} onChange={(e) => onChange(e.target.value)} />
      ) : (
        <input {...common} type="text" onChange={(e) => onChange(e.target.value)} />
      )}
      <Problems id={problems} violations={violations} own={own} />
    </div>
  );
}
