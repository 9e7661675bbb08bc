// One request_id per filled form: made when the form changes, kept while the same form is sent
// again (a retry, a second click), made anew after a success. The gateway creates at most one
// ticket per request_id, so a retry can never open a second one.
export function newRequestId(): string {
  // crypto.getRandomValues works on plain http too, where crypto.randomUUID does not exist.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
