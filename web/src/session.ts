// The bearer token lives in sessionStorage only: gone with the tab, never in a URL, never logged.
const KEY = "itsm-gateway.token";

export function savedToken(): string | null {
  try {
    return window.sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: the person signs in again on each load
  }
}

export function saveToken(token: string): void {
  try {
    window.sessionStorage.setItem(KEY, token);
  } catch {
    // storage disabled: the token still lives in memory for this page
  }
}

export function forgetToken(): void {
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // nothing was stored
  }
}
