// The only module that talks HTTP. Tokens live in localStorage so the responder page survives reloads.

const KEY = "sitrep.auth";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
  get missing() {
    return this.status === 404 || this.status === 405;
  }
  /** "field: message" lines from a 422 problem, else the detail. */
  describe() {
    const errs = this.problem.errors;
    if (Array.isArray(errs) && errs.length) {
      return errs.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; ");
    }
    return this.message;
  }
}

export function loadAuth() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

function saveAuth(pair) {
  const auth = {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    role: pair.role,
    expires_at: Date.now() + (pair.expires_in || 900) * 1000,
  };
  localStorage.setItem(KEY, JSON.stringify(auth));
  return auth;
}

export function clearAuth() {
  localStorage.removeItem(KEY);
}

let refreshing = null;
let onLoggedOut = () => {};
export function setLoggedOutHandler(fn) {
  onLoggedOut = fn;
}

export async function login(username, password) {
  const r = await fetch("/v1/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body);
  return saveAuth(body);
}

export async function logout() {
  const auth = loadAuth();
  clearAuth();
  if (auth?.refresh_token) {
    fetch("/v1/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${auth.access_token}` },
      body: JSON.stringify({ refresh_token: auth.refresh_token }),
    }).catch(() => {});
  }
}

async function refresh() {
  const auth = loadAuth();
  if (!auth?.refresh_token) throw new ApiError(401, { detail: "not logged in" });
  if (!refreshing) {
    refreshing = (async () => {
      const r = await fetch("/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: auth.refresh_token }),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) {
        if (r.status === 401 || r.status === 400 || r.status === 409) {
          clearAuth();
          onLoggedOut();
        }
        throw new ApiError(r.status, body);
      }
      return saveAuth(body);
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** A fresh access token (refreshed when it expires within 30 s). */
export async function accessToken() {
  let auth = loadAuth();
  if (!auth) throw new ApiError(401, { detail: "not logged in" });
  if (auth.expires_at - Date.now() < 30_000) auth = await refresh();
  return auth.access_token;
}

/**
 * JSON request. `body` is JSON-encoded. Throws ApiError (with .missing for 404) or TypeError on
 * network failure. A 401 triggers one refresh and one retry.
 */
export async function api(path, { method = "GET", body, query, headers = {}, retry = true } = {}) {
  let url = path;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
    const s = qs.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const token = await accessToken();
  const init = { method, headers: { Accept: "application/json", Authorization: `Bearer ${token}`, ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  if (r.status === 401 && retry) {
    await refresh();
    return api(path, { method, body, query, headers, retry: false });
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/** Items of a collection response, whatever its envelope ({items}, {features}, or a bare array). */
export function itemsOf(data) {
  if (!data) return [];
  if (Array.isArray(data)) return data;
  if (Array.isArray(data.items)) return data.items;
  if (Array.isArray(data.features)) return data.features;
  if (Array.isArray(data.data)) return data.data;
  return [];
}

/** Every page of a cursor-paginated collection (bounded by maxItems). */
export async function listAll(path, query = {}, maxItems = 20000) {
  const out = [];
  let cursor = null;
  do {
    const data = await api(path, { query: { ...query, limit: query.limit || 1000, cursor } });
    out.push(...itemsOf(data));
    cursor = data && !Array.isArray(data) ? data.next_cursor : null;
  } while (cursor && out.length < maxItems);
  return out;
}
