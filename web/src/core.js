// What every part of the dashboard shares: the page's state, the API call, and
// number formatting. The page only ever calls the public HTTP API with the key
// the user typed (or the share token in the link); it holds no secrets of its own.

export const $ = (id) => document.getElementById(id);

export const PALETTE = ["#2a7f72", "#3d6fb6", "#d9822b", "#8e5bb5", "#c2434b", "#5a8f29", "#b8860b", "#2f8fbf"];

// state is the page's memory; window.privalyticsDashboard exposes it read-only
// to the browser test, which compares what is drawn with what the API answered.
export const state = {
  key: "",
  shared: false, // signed in with a dashboard's share token: read-only, that dashboard only
  tenant: null,
  budget: null,
  budgetStale: false, // views may have spent budget since it was read: read it again before comparing a cost
  charges: [],
  explained: null, // the question last explained, with the answer of :explain
  preview: null, // the view last previewed, with the answer of /v1/views/preview
  lastQuery: null,
  lastResult: null,
  views: [],
  dashboards: [],
  dash: null, // the dashboard on screen and what was computed for it
  charts: { trend: null, gauge: null, history: null, panels: [] },
};
window.privalyticsDashboard = state;

export class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || "";
    this.requestID = e.request_id || "";
    this.body = body;
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch { /* an empty or non-JSON body */ }
  if (!res.ok) throw new APIError(res.status, data);
  return data;
}

export function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const digits = Math.abs(v) >= 100 || Number.isInteger(v) ? 0 : 2;
  return v.toLocaleString("en-GB", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// fmtMoney formats an amount in a currency: whole units from 100 up, else pence/cents.
export function fmtMoney(v, currency) {
  if (!Number.isFinite(v)) return String(v);
  const digits = Math.abs(v) >= 100 ? 0 : 2;
  return v.toLocaleString("en-GB", { style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtEps(v) {
  return Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : "—";
}

export function isoDate(d) {
  return d.toISOString().slice(0, 10);
}

export function show(el, on) { el.hidden = !on; }

export function setError(el, err) {
  if (!err) { show(el, false); el.textContent = ""; return; }
  el.textContent = err.requestID ? `${err.message} (request ${err.requestID})` : err.message;
  show(el, true);
}

export function option(value, text, selected) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  o.selected = !!selected;
  return o;
}

export function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

// el builds an element with text and attributes; children are appended.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== undefined && c !== null));
  return e;
}
