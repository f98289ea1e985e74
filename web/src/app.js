// The Privalytics dashboard. A marketer signs in with a query API key and either
// asks an ad-hoc question (charged each run: POST /v1/queries, after its cost is
// shown by POST /v1/queries:explain) or saves it as a view (a fixed cost per
// period, released once per period and read free forever: POST /v1/views, after
// POST /v1/views/preview says what it costs). Views go on saved dashboards
// (dashboards.js), which can be shared read-only with a link.
//
// The page only ever calls the public HTTP API with the key the user typed; it
// holds no secrets of its own. The key lives in sessionStorage, so it is gone when
// the tab closes.
import "./style.css";
import {
  Chart, LineController, LineElement, PointElement, CategoryScale, LinearScale,
  Filler, Tooltip, Legend, DoughnutController, ArcElement,
} from "chart.js";
import { $, PALETTE, state, api, fmt, fmtEps, isoDate, show, setError, option, alpha, el } from "./core.js";
import { setupDashboards, loadDashboards, openShared, showTab } from "./dashboards.js";

Chart.register(LineController, LineElement, PointElement, CategoryScale, LinearScale,
  Filler, Tooltip, Legend, DoughnutController, ArcElement);
Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
Chart.defaults.color = "#5b6b7c";

const KEY_STORAGE = "privalytics.apiKey";
const SERIES_IN_CHART = 8; // more series than this make the chart unreadable; the table has them all

// ---------------------------------------------------------------- sign in

async function signIn(key) {
  state.key = key;
  const tenant = await api("GET", "/v1/tenant");
  try {
    await refreshBudget();
  } catch (err) {
    if (err.code === "forbidden") {
      throw new Error("This key cannot run queries; sign in with a key that has the query (or admin) role.");
    }
    throw err;
  }
  state.tenant = tenant;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("tenant-name").textContent = tenant.name || tenant.id;
  setupForm(tenant.schema);
  show($("login-view"), false);
  show($("tabs"), true);
  show($("session"), true);
  showTab("ask");
  scheduleExplain();
  await Promise.all([loadViews(), loadDashboards()]);
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  location.reload();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = $("login-button");
  button.disabled = true;
  setError($("login-error"), null);
  try {
    await signIn($("api-key").value.trim());
  } catch (err) {
    state.key = "";
    setError($("login-error"), err.status === 401 ? new Error("That key was not accepted: check it was copied whole and has not been revoked.") : err);
  } finally {
    button.disabled = false;
  }
});
$("logout").addEventListener("click", signOut);

// ---------------------------------------------------------------- the question

// measures lists what can be asked of this tenant's schema: counts, and the sum
// and mean of each numeric column (these need clamping bounds per event).
function measuresOf(schema) {
  const out = [
    { id: "count", label: "Events (count)", agg: { name: "events", op: "count" } },
    { id: "distinct", label: "Distinct customers", agg: { name: "customers", op: "distinct_customers" } },
  ];
  for (const c of schema.columns) {
    if (!["int", "decimal", "float"].includes(c.type)) continue;
    out.push({ id: `sum:${c.name}`, label: `Sum of ${c.name}`, agg: { name: `sum_${c.name}`, op: "sum", column: c.name }, bounded: true });
    out.push({ id: `mean:${c.name}`, label: `Average ${c.name}`, agg: { name: `mean_${c.name}`, op: "mean", column: c.name }, bounded: true });
  }
  return out;
}

// dimensions are the string columns a result may be split by. Columns with a
// declared set of values have public keys; the others need DP partition
// selection, which costs a little δ.
function dimensionsOf(schema) {
  return schema.columns.filter((c) => c.type === "string" && c.name !== schema.subject && !c.free_text);
}

let measures = [];
let dimensions = [];

function setupForm(schema) {
  measures = measuresOf(schema);
  dimensions = dimensionsOf(schema);
  const m = $("measure");
  m.replaceChildren(...measures.map((x) => option(x.id, x.label, x.id === "sum:amount")));
  fillDimensions();

  // The event-type filter exists when the schema declares the retail "type" column.
  const typeCol = schema.columns.find((c) => c.name === "type" && c.allowed);
  show($("type-row"), !!typeCol);
  if (typeCol) {
    $("event-type").replaceChildren(option("", "All events"),
      ...typeCol.allowed.map((v) => option(v, v, v === "purchase")));
  }

  // Default range: the last full calendar year, which a yearly review starts from.
  const year = new Date().getUTCFullYear();
  $("from").value = `${year - 1}-01-01`;
  $("to").value = `${year}-01-01`;
  // A view starts by default twelve months back, so its dashboard has a year to show.
  const now = new Date();
  $("view-start").value = isoDate(new Date(Date.UTC(now.getUTCFullYear() - 1, now.getUTCMonth(), 1)));
  syncBounds();
}

// fillDimensions offers the splits: a view needs public keys (declared in the
// schema), so in view mode the columns whose keys would be chosen from the data
// are listed but cannot be picked.
function fillDimensions() {
  const d = $("dimension");
  const was = d.value;
  const view = currentMode() === "view";
  d.replaceChildren(option("", "Nothing (one total)", true),
    ...dimensions.filter((c) => c.name !== "type").map((c) => {
      const o = option(c.name, c.allowed ? c.name : `${c.name} (keys chosen privately${view ? ": not for views" : ""})`);
      o.disabled = view && !c.allowed;
      return o;
    }));
  const keep = [...d.options].find((o) => o.value === was && !o.disabled);
  d.value = keep ? was : "";
}

// ---------------------------------------------------------------- ad-hoc or view

function currentMode() {
  return $("mode-view").checked ? "view" : "adhoc";
}

function syncMode() {
  const view = currentMode() === "view";
  state.budgetStale = true; // views may have been released (and charged) meanwhile
  show($("view-name-row"), view);
  show($("view-fields"), view);
  show($("adhoc-fields"), !view);
  show($("view-results"), view);
  show($("adhoc-results"), !view);
  $("from").required = !view;
  $("to").required = !view;
  $("epsilon-label").textContent = view ? "Privacy cost ε per release" : "Privacy cost ε per run";
  $("run").textContent = view ? "Create view" : "Run query";
  $("explain").querySelector(".explain-title").textContent = view ? "What this view costs" : "Before you run";
  fillDimensions();
  setError($("query-error"), null);
}

function currentMeasure() {
  return measures.find((x) => x.id === $("measure").value) || measures[0];
}

// autoBounds: the limits are left to automatic tuning (the default), which
// gives the typical cell the smallest expected error for the same ε.
function autoBounds() {
  return $("auto-bounds").checked;
}

function syncBounds() {
  show($("bounds-row"), !!currentMeasure().bounded && !autoBounds());
  for (const id of ["max-groups", "max-rows"]) $(id).disabled = autoBounds();
}

// withBounds puts the form's fixed limits on a query, unless tuning chooses them.
function withBounds(q, agg, m) {
  if (autoBounds()) return q;
  if (m.bounded) {
    agg.lower = Number($("lower").value);
    agg.upper = Number($("upper").value);
  }
  q.bounds = { max_groups: Number($("max-groups").value), max_rows_per_group: Number($("max-rows").value) };
  return q;
}

// buildQuery turns the form into a query of the JSON model (see the README).
function buildQuery() {
  const schema = state.tenant.schema;
  const m = currentMeasure();
  const agg = { ...m.agg };
  const where = [];
  const type = $("event-type").value;
  if (!$("type-row").hidden && type) where.push({ column: "type", eq: type });
  where.push({ column: schema.time, gte: $("from").value, lt: $("to").value });
  const groupBy = [{ time: $("granularity").value }];
  const dim = $("dimension").value;
  let delta = 0;
  if (dim) {
    groupBy.push({ column: dim });
    const col = dimensions.find((c) => c.name === dim);
    if (col && !col.allowed) delta = 1e-6; // partition selection of data-derived keys
  }
  const q = withBounds({
    where,
    group_by: groupBy,
    aggregates: [agg],
    epsilon: Number($("epsilon").value),
    confidence: 0.95,
  }, agg, m);
  if (delta) q.delta = delta;
  // A split whose keys are public (an allowed list) gets the totals per time
  // bucket as the query's rollup: sums of the cells, at no extra ε.
  const split = dim && dimensions.find((c) => c.name === dim);
  if (split && split.allowed && (agg.op === "count" || agg.op === "sum")) q.rollup = true;
  return q;
}

// expectedError says a fixed-bounds aggregate's predicted ± per cell and, with
// rollup, per total of a time bucket (the first subtotal level).
function expectedError(a, confidence) {
  let text = `± ${fmt(a.half_width)} per cell (${Math.round(confidence * 100)}%)`;
  let note = a.note || "";
  if (a.subtotal_half_widths && a.subtotal_half_widths.length) {
    text += `, ± ${fmt(a.subtotal_half_widths[0])} per ${TOTAL} (free)`;
    note = note.split("; rollup:")[0].replace(/^rollup:.*/, "");
  }
  return note ? `${text} — ${note}` : text;
}

// TOTAL names a key a rollup's subtotal sums over, in the chart, the table
// and the CSV.
export const TOTAL = "total";

// keyText is a row's i-th key as shown: TOTAL where the row sums over it.
function keyText(r, i) {
  return r.subtotal && i >= r.key.length - r.subtotal ? TOTAL : r.key[i];
}

// rowOrder sorts rows by their keys, each group's subtotal after its cells.
function rowOrder(a, b) {
  const summed = (r, i) => Boolean(r.subtotal) && i >= r.key.length - r.subtotal;
  for (let i = 0; i < a.key.length; i++) {
    const sa = summed(a, i), sb = summed(b, i);
    if (sa !== sb) return sa ? 1 : -1;
    if (!sa) {
      const c = a.key[i].localeCompare(b.key[i]);
      if (c) return c;
    }
  }
  return 0;
}

// buildViewSpec turns the form into a view: the question without a time filter
// (each release adds its period's), its split's public keys declared, a cadence
// and the ε of each release.
function buildViewSpec() {
  const m = currentMeasure();
  const agg = { ...m.agg };
  const where = [];
  const type = $("event-type").value;
  if (!$("type-row").hidden && type) where.push({ column: "type", eq: type });
  const groupBy = [];
  const dim = $("dimension").value;
  if (dim) {
    const col = dimensions.find((c) => c.name === dim);
    groupBy.push({ column: dim, keys: col && col.allowed ? [...col.allowed] : undefined });
  }
  const epsilon = Number($("epsilon").value);
  const query = withBounds({
    where,
    group_by: groupBy,
    aggregates: [agg],
    epsilon,
    confidence: 0.95,
  }, agg, m);
  const name = $("view-name").value.trim() || `${m.label}${dim ? ` by ${dim}` : ""}${type && !$("type-row").hidden ? ` (${type})` : ""}`;
  return {
    name,
    query,
    cadence: $("cadence").value,
    epsilon,
    so_far: $("so-far").checked,
    start: $("view-start").value,
  };
}

// ---------------------------------------------------------------- explain

let explainTimer = 0;
let explainSeq = 0;

function scheduleExplain() {
  explainSeq++; // an answer to an older question is dropped when it arrives
  clearTimeout(explainTimer);
  $("run").disabled = true;
  explainTimer = setTimeout(explain, 250);
}

async function explain() {
  if (currentMode() === "view") return preview();
  const seq = explainSeq;
  const box = $("explain");
  const body = $("explain-body");
  let q;
  try {
    q = buildQuery();
    // Views' releases spend budget while the page is open (each month they are
    // read): what is left is read again before it is compared with a cost.
    const [ex] = await Promise.all([api("POST", "/v1/queries:explain", q),
      state.budgetStale || Date.now() - budgetAt > 30000 ? refreshBudget().catch(() => {}) : null]);
    if (seq !== explainSeq) return; // a newer question is on its way
    box.classList.remove("bad");
    state.explained = { query: q, explanation: ex };
    const a = ex.aggregates[0];
    const b = ex.budget;
    const rows = [
      ["Cost", `ε ${fmtEps(ex.cost.epsilon)}${ex.cost.delta ? ` · δ ${ex.cost.delta.toExponential(0)}` : ""}${ex.cost.rho ? ` · ρ ${fmtEps(ex.cost.rho)}` : ""}`],
      a.tuned
        ? ["Expected error", `chosen from the data when it runs: the limits and the noise are picked for the smallest expected error, and each cell comes with its ${Math.round(ex.confidence * 100)}% interval`]
        : ["Expected error", expectedError(a, ex.confidence)],
    ];
    // A key with its own share spends from that share; zCDP answers compose in ρ,
    // so there subtracting ε would mislead and the budget is shown as it stands.
    const share = state.budget && state.budget.key && !state.budget.key.shared ? state.budget.key : null;
    const pool = share || b;
    if (pool && b.accounting === "zcdp") {
      rows.push(["Budget now", `ε ${fmtEps(pool.remaining.epsilon)} of ${fmtEps(pool.total.epsilon)} (zCDP)`]);
    } else if (pool) {
      rows.push(["Budget after", `ε ${fmtEps(Math.max(0, pool.remaining.epsilon - ex.cost.epsilon))} of ${fmtEps(pool.total.epsilon)}${share ? " (this key's share)" : ""}`]);
    }
    if (ex.thresholded) {
      // Say what the split costs in answers, and what would lift it: the
      // schema's allowed values are public keys (no δ, nothing hidden, and
      // the rollup's free totals for a count or a sum).
      const summable = a.op === "count" || a.op === "sum";
      rows.push(["Groups", "chosen by DP partition selection: rare values are hidden" +
        (summable ? `, so no total per ${$("granularity").value} is given (it would leave them out)` : "") +
        `. Values the tenant's schema declares for ${$("dimension").value} (allowed) are all shown and need no δ` +
        (summable ? `, with their totals at no extra ε` : "")]);
    }
    const dl = document.createElement("dl");
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dl.append(dt, dd);
    }
    dl.id = "explain-list";
    body.replaceChildren(dl);
    body.classList.remove("muted");
    // A question the budget cannot pay for is not run: the server would refuse
    // it anyway, and the page says why before anyone clicks.
    const short = shortfall(ex.cost, q);
    if (short) body.append(el("p", { class: "sentence verdict", id: "explain-refusal", text: short }));
    box.classList.toggle("bad", !!short);
    $("run").disabled = !!short;
  } catch (err) {
    if (seq !== explainSeq) return;
    box.classList.add("bad");
    body.textContent = err.message;
  }
}

// ---------------------------------------------------------------- view preview

// costSentences says what a view costs in plain words, from POST /v1/views/preview:
// its cost per period, all views together against the period's budget, and
// whether it fits. The ε and δ of each part are under "Accounting details".
export function costSentences(c) {
  const period = c.period || "month";
  const releases = c.releases_per_period || (c.per_release.epsilon > 0 ? Math.round(c.per_period.epsilon / c.per_release.epsilon) : 0);
  const out = [
    `Costs ε ${fmtEps(c.per_period.epsilon)} per ${period}` +
      (releases > 1 ? ` (${releases} releases of ε ${fmtEps(c.per_release.epsilon)})` : "") + ".",
    `All your views together: ${fmtEps(c.all_views_per_period.epsilon)} of your ${fmtEps(c.period_budget.epsilon)} per ${period}.`,
  ];
  let verdict;
  if (c.fits) {
    verdict = c.periods_budget_lasts == null
      ? `Fits: the budget renews every ${period}, so this can run for good.`
      : `Fits: the budget lasts ${c.periods_budget_lasts} ${period}${c.periods_budget_lasts === 1 ? "" : "s"} at this rate.`;
  } else {
    verdict = `Does not fit: your views would need ε ${fmtEps(c.all_views_per_period.epsilon)} per ${period}, ` +
      `more than the ${fmtEps(c.period_budget.epsilon)} you have. Lower ε per release, release less often, or delete a view.`;
  }
  return { lines: out, verdict };
}

async function preview() {
  const seq = explainSeq;
  const box = $("explain");
  const body = $("explain-body");
  const run = $("run");
  try {
    const spec = buildViewSpec();
    const cost = await api("POST", "/v1/views/preview", spec);
    if (seq !== explainSeq) return;
    state.preview = { spec, cost };
    renderPreview(cost);
    box.classList.toggle("bad", !cost.fits);
    run.disabled = !cost.fits || creating;
  } catch (err) {
    if (seq !== explainSeq) return;
    state.preview = null;
    box.classList.add("bad");
    body.textContent = err.message;
    run.disabled = true;
  }
}

function renderPreview(c) {
  const { lines, verdict } = costSentences(c);
  const details = el("details", { id: "preview-details" }, el("summary", { text: "Accounting details" }));
  const dl = el("dl");
  const d = (x) => `ε ${fmtEps(x.epsilon)}${x.delta ? `, δ ${x.delta.toExponential(0)}` : ""}`;
  for (const [k, v] of [["Each release", d(c.per_release)], [`This view per ${c.period}`, d(c.per_period)],
    [`All views per ${c.period}`, d(c.all_views_per_period)], [`Budget per ${c.period}`, d(c.period_budget)]]) {
    dl.append(el("dt", { text: k }), el("dd", { text: v }));
  }
  details.append(dl);
  if (c.message) details.append(el("p", { class: "small muted", text: c.message }));
  $("explain-body").replaceChildren(
    ...lines.map((l) => el("p", { class: "sentence", text: l })),
    el("p", { class: "sentence verdict", id: "preview-verdict", text: verdict }),
    details);
  $("explain-body").classList.remove("muted");
}

// monthsOf lists the calendar months ("2026-03") that [from, to) touches.
function monthsOf(from, to) {
  const out = [];
  const end = new Date(new Date(to + "T00:00:00Z").getTime() - 1);
  for (let d = new Date(from.slice(0, 7) + "-01T00:00:00Z"); d <= end; d = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1))) {
    out.push(d.toISOString().slice(0, 7));
    if (out.length > 1200) break;
  }
  return out;
}

// shortfall says in words why the budget cannot pay for an ad-hoc question, or
// returns "" when it can. With a budget per month of data, the question is
// charged in every month its dates touch, so each of them must have enough left.
// zCDP budgets compose in ρ and are left to the server to decide.
export function shortfall(cost, q) {
  const b = state.budget;
  if (!b || b.accounting === "zcdp" || !(cost.epsilon > 0)) return "";
  const eps = cost.epsilon * (1 - 1e-12);
  const share = b.key && !b.key.shared ? b.key : null;
  if (share && share.remaining.epsilon < eps) {
    return `Not enough budget: this question costs ε ${fmtEps(cost.epsilon)} and this key has ε ${fmtEps(share.remaining.epsilon)} left. Lower ε, or ask an admin for a larger share.`;
  }
  if (b.period === "month") {
    const time = q.where.find((f) => f.column === state.tenant.schema.time);
    if (time && time.gte && time.lt) {
      const left = new Map((b.periods || []).map((p) => [p.period, p.remaining.epsilon]));
      const short = monthsOf(time.gte, time.lt).filter((m) => (left.has(m) ? left.get(m) : b.total.epsilon) < eps);
      if (short.length) {
        const m = short[0];
        return `Not enough budget: this question costs ε ${fmtEps(cost.epsilon)} in each month it covers, and ${m} has ε ${fmtEps(left.has(m) ? left.get(m) : b.total.epsilon)} left` +
          `${short.length > 1 ? ` (${short.length} months are short)` : ""}. Lower ε, or ask about fewer months.`;
      }
      return "";
    }
  }
  if (b.remaining.epsilon < eps) {
    return `Not enough budget: this question costs ε ${fmtEps(cost.epsilon)} and ε ${fmtEps(b.remaining.epsilon)} is left. Lower ε.`;
  }
  return "";
}

const form = $("query-form");
form.addEventListener("input", (ev) => {
  if (ev.target.id === "measure" || ev.target.id === "auto-bounds") syncBounds();
  if (ev.target.name === "mode") syncMode();
  scheduleExplain();
});
form.addEventListener("change", scheduleExplain);

// ---------------------------------------------------------------- run

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (currentMode() === "view") return createView();
  const run = $("run");
  run.disabled = true;
  setError($("query-error"), null);
  const q = buildQuery();
  try {
    const res = await api("POST", "/v1/queries", q);
    state.lastQuery = q;
    state.lastResult = res;
    if (res.budget) state.budget = { ...state.budget, ...res.budget };
    render(res);
    await refreshBudget();
  } catch (err) {
    setError($("query-error"), err);
  } finally {
    run.disabled = false;
    scheduleExplain();
  }
});

function render(res) {
  renderTrend(res);
  renderTable(res);
  const agg = res.aggregates[0];
  const parts = [`Charged ε ${fmtEps(res.cost.epsilon)}${res.cost.delta ? `, δ ${res.cost.delta.toExponential(0)}` : ""}`,
    `${agg.mechanism} noise`, `${res.rows.filter((r) => !r.subtotal).length} cells`];
  if (res.cached) parts[0] = "Answered from the cache at no cost (same question, same data)";
  if (res.thresholded) parts.push("groups released through DP partition selection");
  if (res.tuning) parts.push(tuningSummary(res.tuning));
  if (res.rows.some((r) => r.subtotal)) parts.push(`"${TOTAL}" rows sum the cells: free, no extra ε`);
  $("result-meta").textContent = parts.join(" · ");
}

// tuningSummary says in a few words what automatic tuning chose.
export function tuningSummary(t) {
  const a = (t.aggregates || [])[0];
  let bound = "";
  if (a && a.max_norm) bound = `, each customer's totals scaled to a norm of ${fmt(a.max_norm)} across the ${t.max_groups} groups`;
  else if (a) bound = `, a customer's total per cell clamped to ${fmt(a.upper)}`;
  let corrected = "";
  if (a && a.correction) corrected = `; figures corrected for the ${fmtPct(a.bounding_loss)} the limits are estimated to remove`;
  return `limits chosen from the data: a customer in at most ${t.max_groups} groups${bound} (${fmtEps(t.epsilon)} of ε spent choosing)${corrected}`;
}

// fmtPct is a share as a percentage: one decimal under 10%, whole above.
function fmtPct(x) {
  const p = 100 * x;
  return `${p < 10 ? p.toFixed(1) : Math.round(p)}%`;
}

// series splits the rows by the second key (the dimension), or one "total".
function seriesOf(res) {
  const labels = [...new Set(res.rows.filter((r) => !(r.subtotal >= r.key.length)).map((r) => r.key[0]))].sort();
  const index = new Map(labels.map((l, i) => [l, i]));
  const byName = new Map();
  for (const r of res.rows) {
    if (r.subtotal >= r.key.length) continue; // the grand total: no point in time
    const name = r.key.length > 1 ? keyText(r, 1) : res.aggregates[0].name;
    if (!byName.has(name)) {
      byName.set(name, { name, value: labels.map(() => null), lower: labels.map(() => null), upper: labels.map(() => null), total: 0 });
    }
    const s = byName.get(name);
    const i = index.get(r.key[0]);
    s.value[i] = r.cells[0].value;
    s.lower[i] = r.cells[0].lower;
    s.upper[i] = r.cells[0].upper;
    s.total += r.cells[0].value;
  }
  const all = [...byName.values()].sort((a, b) => b.total - a.total);
  return { labels, series: all.slice(0, SERIES_IN_CHART), hidden: Math.max(0, all.length - SERIES_IN_CHART) };
}


function renderTrend(res) {
  const { labels, series, hidden } = seriesOf(res);
  const datasets = [];
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    // The band: the lower edge, then the upper edge filled down to it.
    datasets.push({ label: `${s.name} lower`, role: "band-lower", data: s.lower, borderWidth: 0, pointRadius: 0, fill: false, borderColor: "transparent" });
    datasets.push({ label: `${s.name} 95% interval`, role: "band-upper", data: s.upper, borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: alpha(color, 0.18), borderColor: "transparent" });
    datasets.push({ label: s.name, role: "value", data: s.value, borderColor: color, backgroundColor: color, borderWidth: 2, pointRadius: labels.length > 60 ? 0 : 3, tension: 0, fill: false });
  });
  const agg = res.aggregates[0];
  $("trend-title").textContent = `${agg.name[0].toUpperCase()}${agg.name.slice(1)} by ${res.group_by[0]}${res.group_by.length > 1 ? ` and ${res.group_by[1]}` : ""}`;
  $("trend-note").textContent = (hidden ? `chart shows the ${series.length} largest of ${series.length + hidden}; the table has all · ` : "") + "shaded: 95% interval";
  const config = {
    type: "line",
    data: { labels, datasets },
    options: {
      maintainAspectRatio: false,
      animation: false, // the chart is final as soon as it is drawn (screenshots and tests rely on it)
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { grid: { display: false } },
        y: { beginAtZero: agg.op === "count" || agg.op === "distinct_customers", grid: { color: "#eef1f5" }, ticks: { callback: (v) => fmt(v) } },
      },
      plugins: {
        legend: { labels: { filter: (item, data) => data.datasets[item.datasetIndex].role === "value", boxWidth: 12 } },
        tooltip: {
          filter: (item) => item.dataset.role === "value",
          callbacks: {
            label: (ctx) => {
              const s = series[Math.floor(ctx.datasetIndex / 3)];
              return `${s.name}: ${fmt(ctx.parsed.y)}  [${fmt(s.lower[ctx.dataIndex])}, ${fmt(s.upper[ctx.dataIndex])}]`;
            },
          },
        },
      },
    },
  };
  if (state.charts.trend) state.charts.trend.destroy();
  state.charts.trend = new Chart($("trend-chart"), config);
}

function columnsOf(res) {
  const agg = res.aggregates[0].name;
  const pct = Math.round(res.confidence * 100);
  return [...res.group_by, agg, `${agg} ${pct}% lower`, `${agg} ${pct}% upper`];
}

function renderTable(res) {
  const table = $("result-table");
  const head = document.createElement("tr");
  columnsOf(res).forEach((c, i) => {
    const th = document.createElement("th");
    th.textContent = c;
    if (i >= res.group_by.length) th.className = "num";
    head.append(th);
  });
  table.tHead.replaceChildren(head);
  const rows = [...res.rows].sort(rowOrder);
  const body = rows.map((r) => {
    const tr = document.createElement("tr");
    if (r.subtotal) tr.className = "subtotal";
    r.key.forEach((_, i) => {
      const td = document.createElement("td");
      td.textContent = keyText(r, i);
      tr.append(td);
    });
    const c = r.cells[0];
    [c.value, c.lower, c.upper].forEach((v, i) => {
      const td = document.createElement("td");
      td.className = i === 0 ? "num" : "num interval";
      td.dataset.value = String(v);
      td.textContent = fmt(v);
      tr.append(td);
    });
    return tr;
  });
  table.tBodies[0].replaceChildren(...body);
  $("export").disabled = rows.length === 0;
}

// ---------------------------------------------------------------- views

let creating = false; // a view is being created: Create stays disabled until it is listed

async function createView() {
  if (creating) return;
  creating = true;
  const run = $("run");
  run.disabled = true;
  setError($("query-error"), null);
  const spec = buildViewSpec();
  try {
    await api("POST", "/v1/views", spec);
    $("view-name").value = "";
    await loadViews();
  } catch (err) {
    // An over-budget view is refused with the cost in words; nothing was created.
    setError($("query-error"), err);
  } finally {
    creating = false;
    scheduleExplain();
  }
}

export async function loadViews() {
  try {
    state.views = (await api("GET", "/v1/views")).views || [];
    setError($("views-error"), null);
  } catch (err) {
    state.views = [];
    setError($("views-error"), err);
  }
  renderViews();
}

function renderViews() {
  const tbody = $("views-table").tBodies[0];
  if (state.views.length === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colSpan: 6, class: "muted", text: "No views yet: describe a question on the left and create it." })));
    $("views-total").textContent = "";
    $("create-dashboard").disabled = true;
    return;
  }
  tbody.replaceChildren(...state.views.map((v) => {
    const c = v.cost || {};
    const del = el("button", { type: "button", class: "link danger", text: "Delete" });
    del.addEventListener("click", async () => {
      if (!confirm(`Delete the view "${v.name}"? Its released numbers stay paid for; the view stops releasing.`)) return;
      try { await api("DELETE", `/v1/views/${encodeURIComponent(v.id)}`); } catch (err) { setError($("views-error"), err); }
      await loadViews();
    });
    return el("tr", { "data-view": v.id },
      el("td", {}, el("input", { type: "checkbox", class: "pick-view", value: v.id, "aria-label": `Put ${v.name} on the new dashboard` })),
      el("td", { text: v.name }),
      el("td", { text: v.cadence + (v.so_far ? " (+ so far)" : "") }),
      el("td", { class: "num", text: fmtEps(v.epsilon) }),
      el("td", { class: "num", text: c.per_period ? fmtEps(c.per_period.epsilon) : "—" }),
      el("td", {}, del));
  }));
  const last = state.views[state.views.length - 1].cost;
  $("views-total").textContent = last && last.all_views_per_period
    ? `All views together: ε ${fmtEps(last.all_views_per_period.epsilon)} of ${fmtEps(last.period_budget.epsilon)} per ${last.period}.`
    : "";
  syncCreateDashboard();
}

function pickedViews() {
  return [...document.querySelectorAll(".pick-view:checked")].map((c) => c.value);
}

function syncCreateDashboard() {
  $("create-dashboard").disabled = pickedViews().length === 0;
}

$("views-table").addEventListener("change", syncCreateDashboard);
$("create-dashboard").addEventListener("click", async () => {
  const ids = pickedViews();
  const name = $("dashboard-name").value.trim() || "Dashboard";
  setError($("views-error"), null);
  try {
    const d = await api("POST", "/v1/dashboards", { name, view_ids: ids, layout: { currency: $("currency").value } });
    $("dashboard-name").value = "";
    for (const c of document.querySelectorAll(".pick-view:checked")) c.checked = false;
    syncCreateDashboard();
    await loadDashboards(d.id);
    showTab("dashboards");
  } catch (err) {
    setError($("views-error"), err);
  }
});

// ---------------------------------------------------------------- CSV

function csvField(v) {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

// toCSV writes the full-precision values (the table shows them rounded).
function toCSV(res) {
  const lines = [columnsOf(res).map(csvField).join(",")];
  for (const r of [...res.rows].sort(rowOrder)) {
    const c = r.cells[0];
    lines.push([...r.key.map((_, i) => keyText(r, i)), c.value, c.lower, c.upper].map(csvField).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

$("export").addEventListener("click", () => {
  const res = state.lastResult;
  if (!res) return;
  const blob = new Blob([toCSV(res)], { type: "text/csv;charset=utf-8" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `privalytics-${res.aggregates[0].name}-by-${res.group_by.join("-")}-${isoDate(new Date())}.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
state.toCSV = toCSV;

// ---------------------------------------------------------------- budget

let budgetAt = 0;

async function refreshBudget() {
  state.budget = await api("GET", "/v1/budget");
  budgetAt = Date.now();
  state.budgetStale = false;
  try {
    state.charges = (await api("GET", "/v1/budget/charges?limit=500")).charges || [];
  } catch {
    state.charges = []; // the gauge still says what is left
  }
  renderBudget();
}

function renderBudget() {
  const b = state.budget;
  if (!b) return;
  const key = b.key && !b.key.shared ? b.key : null;
  const total = key ? key.total.epsilon : b.total.epsilon;
  const left = key ? key.remaining.epsilon : b.remaining.epsilon;
  const spent = Math.max(0, total - left);
  // With a budget per month of data, what is left is the least any month has.
  $("budget-pill").textContent = b.period
    ? `ε ${fmtEps(b.remaining.epsilon)} of ${fmtEps(b.total.epsilon)} per ${b.period} left (the tightest ${b.period})`
    : `ε ${fmtEps(b.remaining.epsilon)} of ${fmtEps(b.total.epsilon)} left`;
  $("gauge-left").textContent = `ε ${fmtEps(left)}`;
  $("gauge-of").textContent = `left of ${fmtEps(total)}${key ? " (this key's share)" : ""}`;
  const notes = [];
  if (b.accounting === "zcdp") notes.push("zCDP accounting; ε figures are conversions of ρ");
  if (b.period) notes.push(`each ${b.period} of data has its own budget`);
  $("budget-note").textContent = notes.join(" · ");

  const ratio = total > 0 ? left / total : 0;
  const leftColor = ratio > 0.5 ? "#2a7f72" : ratio > 0.2 ? "#d9822b" : "#c2434b";
  const gaugeData = { labels: ["left", "spent"], datasets: [{ data: [left, spent], backgroundColor: [leftColor, "#e3e8ee"], borderWidth: 0 }] };
  if (state.charts.gauge) {
    state.charts.gauge.data = gaugeData;
    state.charts.gauge.update();
  } else {
    state.charts.gauge = new Chart($("budget-gauge"), {
      type: "doughnut",
      data: gaugeData,
      options: { maintainAspectRatio: false, animation: false, rotation: -90, circumference: 180, cutout: "72%", plugins: { legend: { display: false }, tooltip: { enabled: false } } },
    });
  }

  // The history: ε spent, cumulated over the ledger's charges (refunds excluded).
  const charges = state.charges.filter((c) => !c.refunded).sort((a, c) => a.time.localeCompare(c.time));
  let sum = 0;
  const points = charges.map((c) => { sum += c.cost.epsilon; return sum; });
  const labels = charges.map((c) => new Date(c.time).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" }));
  const historyData = {
    labels: ["start", ...labels],
    datasets: [{ label: "ε spent", data: [0, ...points], stepped: true, borderColor: "#3d6fb6", backgroundColor: alpha("#3d6fb6", 0.12), fill: true, pointRadius: 2, borderWidth: 2 }],
  };
  if (state.charts.history) {
    state.charts.history.data = historyData;
    state.charts.history.update();
  } else {
    state.charts.history = new Chart($("budget-history"), {
      type: "line",
      data: historyData,
      options: {
        maintainAspectRatio: false, animation: false,
        scales: { x: { grid: { display: false }, ticks: { maxTicksLimit: 6 } }, y: { beginAtZero: true, suggestedMax: b.total.epsilon, grid: { color: "#eef1f5" } } },
        plugins: { legend: { display: false } },
      },
    });
  }
}

// ---------------------------------------------------------------- start

setupDashboards();
syncMode();

(async () => {
  // A share link (#share=<token>) opens its dashboard read-only, with no sign-in.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("share")) {
    await openShared(hash.get("share"), hash.get("dashboard") || "");
    return;
  }
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (!saved) return;
  try {
    await signIn(saved);
  } catch {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = "";
  }
})();
