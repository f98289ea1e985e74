// Saved dashboards of views: KPI tiles, a chart and a table per view, date
// presets, filters on the views' public keys, a comparison with the previous
// period that says whether the change is inside the noise, and read-only share
// links. Everything drawn here comes from releases the server made once per
// period and stored: reading them again costs nothing.
import { Chart } from "chart.js";
import { $, PALETTE, state, api, fmt, fmtMoney, fmtEps, isoDate, show, setError, option, alpha, el } from "./core.js";

const SERIES_IN_CHART = 8;
const CURRENCY_STORAGE = "privalytics.currency";
const TIME_KEYS = new Set(["hour", "day", "week", "month", "quarter", "year"]);

// ---------------------------------------------------------------- tabs

export function showTab(name) {
  state.budgetStale = true; // reading a dashboard may have released (and charged) views
  show($("app-view"), name === "ask");
  show($("dashboards-view"), name === "dashboards");
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === name);
}

export function setupDashboards() {
  state.presetRange = (preset) => { const r = presetRange(preset); return { from: isoDate(r.from), to: isoDate(r.to) }; };
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("preset").addEventListener("change", () => refreshDashboard());
  $("compare").addEventListener("change", () => renderDashboard());
  $("currency").addEventListener("change", () => {
    localStorage.setItem(CURRENCY_STORAGE, $("currency").value);
    renderDashboard();
  });
  $("filters").addEventListener("change", () => renderDashboard());
  $("create-share").addEventListener("click", createShare);
  const saved = localStorage.getItem(CURRENCY_STORAGE);
  if (saved) $("currency").value = saved;
}

// ---------------------------------------------------------------- list and open

export async function loadDashboards(openID) {
  try {
    state.dashboards = (await api("GET", "/v1/dashboards")).dashboards || [];
  } catch (err) {
    state.dashboards = [];
    setError($("dashboard-error"), err);
  }
  const list = $("dashboard-list");
  if (state.dashboards.length === 0) {
    list.replaceChildren(el("li", { class: "muted small", text: "No dashboards yet: tick views under \"Questions & views\" and create one." }));
  } else {
    list.replaceChildren(...state.dashboards.map((d) => {
      const b = el("button", { type: "button", text: d.name, "data-dashboard": d.id });
      b.addEventListener("click", () => openDashboard(d.id));
      return el("li", {}, b);
    }));
  }
  const id = openID || (state.dash && state.dash.dashboard.id) || (state.dashboards[0] && state.dashboards[0].id);
  if (id) await openDashboard(id);
}

export async function openDashboard(id) {
  setError($("dashboard-error"), null);
  try {
    const d = await api("GET", `/v1/dashboards/${encodeURIComponent(id)}`);
    const views = await Promise.all((d.view_ids || []).map((v) => api("GET", `/v1/views/${encodeURIComponent(v)}`)));
    state.dash = { dashboard: d, views, releases: {}, filters: {}, panels: [], shares: (state.dash && state.dash.dashboard.id === id ? state.dash.shares : []) };
    if (d.layout && d.layout.currency && !localStorage.getItem(CURRENCY_STORAGE)) $("currency").value = d.layout.currency;
    for (const b of document.querySelectorAll("#dashboard-list button")) b.classList.toggle("active", b.dataset.dashboard === id);
    $("dashboard-title").textContent = d.name;
    show($("share-panel"), !state.shared);
    renderShares();
    await refreshDashboard();
  } catch (err) {
    dashboardError(err);
  }
}

// dashboardError shows what went wrong; a share link that is refused was revoked
// (or mistyped), which its reader should be told in words.
function dashboardError(err) {
  if (state.shared && (err.status === 401 || err.status === 403)) {
    err = new Error("This share link is not valid any more: it was revoked or mistyped. Ask for a new one.");
  }
  setError($("dashboard-error"), err);
}

// openShared shows the dashboard a share token may read, read-only: no sign-in,
// no question form, no list of other dashboards.
export async function openShared(token, id) {
  state.key = token;
  state.shared = true;
  document.body.classList.add("shared");
  show($("login-view"), false);
  show($("share-session"), true);
  show($("dashboard-side"), false);
  showTab("dashboards");
  try {
    if (!id) {
      const list = (await api("GET", "/v1/dashboards")).dashboards || [];
      if (list.length === 0) throw new Error("This share link opens no dashboard.");
      id = list[0].id;
    }
    await openDashboard(id);
  } catch (err) {
    dashboardError(err);
  }
}

// ---------------------------------------------------------------- dates

const DAY = 86400000;

function utcDay(d) { return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())); }
function addDays(d, n) { return new Date(d.getTime() + n * DAY); }
function monthStart(y, m) { return new Date(Date.UTC(y, m, 1)); }

// presetRange turns a date preset into [from, to) (to exclusive), today included.
export function presetRange(preset, today = utcDay(new Date())) {
  const y = today.getUTCFullYear(), m = today.getUTCMonth();
  const tomorrow = addDays(today, 1);
  const q = Math.floor(m / 3) * 3;
  switch (preset) {
    case "last-30-days": return { from: addDays(today, -29), to: tomorrow };
    case "last-3-months": return { from: monthStart(y, m - 3), to: tomorrow };
    case "this-quarter": return { from: monthStart(y, q), to: tomorrow };
    case "last-quarter": return { from: monthStart(y, q - 3), to: monthStart(y, q) };
    case "this-year": return { from: monthStart(y, 0), to: tomorrow };
    case "last-year": return { from: monthStart(y - 1, 0), to: monthStart(y, 0) };
    case "last-12-months":
    default: return { from: monthStart(y, m - 12), to: tomorrow };
  }
}

// ---------------------------------------------------------------- data

async function refreshDashboard() {
  const dash = state.dash;
  if (!dash) return;
  const { from, to } = presetRange($("preset").value);
  // The previous period is the same number of closed releases just before the
  // range: fetch a range as long again, plus a month of slack for the bucket edges.
  const fetchFrom = addDays(from, -Math.round((to - from) / DAY) - 31);
  dash.range = { from: isoDate(from), to: isoDate(to), fetchFrom: isoDate(fetchFrom) };
  dash.loading = true; // the tiles on screen are the previous range's until the releases arrive
  try {
    const lists = await Promise.all(dash.views.map((v) =>
      api("GET", `/v1/views/${encodeURIComponent(v.id)}/releases?from=${isoDate(fetchFrom)}&to=${isoDate(to)}`)));
    dash.views.forEach((v, i) => { dash.releases[v.id] = lists[i].releases || []; });
    // Quarters are summed by the server from the closed releases, made
    // consistent (parts add up to wholes), at no cost.
    const rollups = await Promise.all(dash.views.map((v) =>
      api("GET", `/v1/views/${encodeURIComponent(v.id)}/rollup?by=quarter`).catch(() => ({ rows: [] }))));
    dash.rollups = {};
    dash.views.forEach((v, i) => { dash.rollups[v.id] = rollups[i].rows || []; });
    setError($("dashboard-error"), null);
  } catch (err) {
    dashboardError(err);
  }
  buildFilters();
  renderDashboard();
  dash.loading = false;
}

// groupColumns are the result's group-by names that are not the release's time bucket.
function groupIndexes(result) {
  return (result.group_by || []).map((g, i) => [g, i]).filter(([g]) => !TIME_KEYS.has(g));
}

// cellsOf lists a release's cells with their group keys (public keys only).
export function cellsOf(release) {
  const r = release.result || {};
  const idx = groupIndexes(r);
  return (r.rows || []).map((row) => {
    const group = {};
    for (const [name, i] of idx) group[name] = row.key[i];
    return { group, label: idx.map(([, i]) => row.key[i]).join(" · "), cell: row.cells[0] };
  });
}

function buildFilters() {
  const dash = state.dash;
  const values = new Map(); // column → Set of values
  for (const v of dash.views) {
    for (const g of (v.query && v.query.group_by) || []) {
      if (!g.column) continue;
      if (!values.has(g.column)) values.set(g.column, new Set());
      for (const k of g.keys || []) values.get(g.column).add(k);
    }
    for (const rel of dash.releases[v.id] || []) {
      for (const c of cellsOf(rel)) {
        for (const [col, val] of Object.entries(c.group)) {
          if (!values.has(col)) values.set(col, new Set());
          values.get(col).add(val);
        }
      }
    }
  }
  const box = $("filters");
  box.replaceChildren(...[...values.entries()].map(([col, set]) => {
    const sel = el("select", { id: `filter-${col}`, "data-column": col },
      option("", `All ${col}s`, !dash.filters[col]),
      ...[...set].sort().map((v) => option(v, v, dash.filters[col] === v)));
    return el("div", {}, el("label", { htmlFor: `filter-${col}`, text: `Filter: ${col}` }), sel);
  }));
}

function readFilters() {
  const f = {};
  for (const s of document.querySelectorAll("#filters select")) if (s.value) f[s.dataset.column] = s.value;
  state.dash.filters = f;
  return f;
}

function passes(group, filters) {
  return Object.entries(filters).every(([col, val]) => !(col in group) || group[col] === val);
}

// isCurrency says whether an aggregate is an amount of money: a sum or an
// average of a column that holds money.
function isCurrency(agg) {
  return !!agg && (agg.op === "sum" || agg.op === "mean") && /amount|revenue|price|sales|spend/i.test(agg.column || "");
}

const half = (c) => (c.upper - c.lower) / 2;

// summarise adds up one release's cells that pass the filters: the sum of the
// values and an interval of half-width √(Σ half²) (independent noise per cell,
// the normal approximation); for an average, the mean of the cells.
function summarise(release, filters, mean) {
  const cells = cellsOf(release).filter((c) => passes(c.group, filters) && Number.isFinite(c.cell.value));
  let value = 0, var2 = 0;
  for (const c of cells) { value += c.cell.value; var2 += half(c.cell) ** 2; }
  let hw = Math.sqrt(var2);
  if (mean && cells.length) { value /= cells.length; hw /= cells.length; }
  return { value, half: hw, cells: cells.length };
}

// kpiOf is a view's figure over the range: the total of its closed releases (the
// average for an average), the "so far" release apart, and the comparison with
// as many closed releases just before.
export function kpiOf(view, releases, range, filters) {
  const agg = (view.query && view.query.aggregates && view.query.aggregates[0]) || {};
  const mean = agg.op === "mean";
  const sorted = [...releases].sort((a, b) => a.start.localeCompare(b.start));
  const from = new Date(range.from + "T00:00:00Z"), to = new Date(range.to + "T00:00:00Z");
  const inRange = sorted.filter((r) => new Date(r.start) < to && new Date(r.end) > from);
  const closed = inRange.filter((r) => r.state === "closed");
  const soFar = inRange.filter((r) => r.state === "so_far");
  const combine = (list) => {
    const parts = list.map((r) => summarise(r, filters, mean));
    let value = parts.reduce((s, p) => s + p.value, 0);
    let hw = Math.sqrt(parts.reduce((s, p) => s + p.half ** 2, 0));
    if (mean && parts.length) { value /= parts.length; hw /= parts.length; }
    return { value, lower: value - hw, upper: value + hw, half: hw, buckets: list.map((r) => r.bucket) };
  };
  const kpi = { view_id: view.id, name: view.name, op: agg.op, currency: isCurrency(agg), ...combine(closed), so_far: null, previous: null };
  if (soFar.length) kpi.so_far = { ...combine(soFar.slice(-1)), bucket: soFar[soFar.length - 1].bucket };
  if (closed.length) {
    const firstStart = closed[0].start;
    const before = sorted.filter((r) => r.state === "closed" && r.start < firstStart);
    if (before.length >= closed.length) {
      const prev = combine(before.slice(before.length - closed.length));
      const diff = kpi.value - prev.value;
      const dhw = Math.sqrt(kpi.half ** 2 + prev.half ** 2);
      kpi.previous = {
        ...prev,
        change: diff,
        ratio: prev.value !== 0 ? diff / Math.abs(prev.value) : null,
        diff_lower: diff - dhw,
        diff_upper: diff + dhw,
        overlap: kpi.lower <= prev.upper && prev.lower <= kpi.upper,
        inside_noise: diff - dhw <= 0 && 0 <= diff + dhw,
      };
    } else {
      kpi.missing_previous = `only ${before.length} earlier period${before.length === 1 ? "" : "s"} released, ${closed.length} needed`;
    }
  }
  kpi.in_range = inRange;
  return kpi;
}

// ---------------------------------------------------------------- drawing

function money(kpiOrAgg) {
  const cur = $("currency").value;
  return kpiOrAgg.currency ? (v) => fmtMoney(v, cur) : fmt;
}

function pct(r) {
  return `${r >= 0 ? "+" : "−"}${Math.abs(r * 100).toFixed(Math.abs(r) < 0.1 ? 1 : 0)}%`;
}

function renderDashboard() {
  const dash = state.dash;
  if (!dash || !dash.range) return;
  const filters = readFilters();
  const compare = $("compare").checked;
  const range = dash.range;
  $("dashboard-range").textContent = `From ${range.from} to ${isoDate(addDays(new Date(range.to + "T00:00:00Z"), -1))}` +
    ` · released periods only; the current period is marked "so far" until it closes` +
    (Object.keys(filters).length ? ` · filtered on ${Object.entries(filters).map(([k, v]) => `${k} = ${v}`).join(", ")}` : "");
  dash.kpis = dash.views.map((v) => kpiOf(v, dash.releases[v.id] || [], range, filters));
  $("kpis").replaceChildren(...dash.kpis.map((k) => kpiTile(k, compare)));
  for (const c of state.charts.panels) c.destroy();
  state.charts.panels = [];
  dash.panels = [];
  $("panels").replaceChildren(...dash.views.map((v, i) => panel(v, dash.kpis[i], filters)));
}

function kpiTile(k, compare) {
  const f = money(k);
  const what = k.op === "mean" ? "average of the closed periods" : k.op === "distinct_customers" ? "sum over the closed periods" : "total of the closed periods";
  const tile = el("section", { class: "card kpi", "data-view": k.view_id },
    el("div", { class: "kpi-name", text: k.name }),
    el("div", { class: "kpi-value", text: k.buckets.length ? f(k.value) : "—" }),
    el("div", { class: "kpi-interval", text: k.buckets.length ? `95%: ${f(k.lower)} to ${f(k.upper)} · ${what} (${k.buckets.length})` : "no closed period released in this range yet" }));
  if (k.so_far) tile.append(el("div", { class: "kpi-sofar", text: `${k.so_far.bucket} so far: ${f(k.so_far.value)} (not closed yet)` }));
  if (compare) {
    let change;
    if (k.previous) {
      const p = k.previous;
      const dir = p.change >= 0 ? "up" : "down";
      const amount = p.ratio == null ? f(p.change) : pct(p.ratio);
      const verdict = p.inside_noise
        ? `inside the noise: the difference could be 0 (from ${f(p.diff_lower)} to ${f(p.diff_upper)})${p.overlap ? "; the intervals overlap" : ""}`
        : `outside the noise: the difference is ${f(p.diff_lower)} to ${f(p.diff_upper)}, which excludes 0${p.overlap ? " (the intervals overlap, but the difference still excludes 0)" : ""}`;
      change = el("div", { class: "kpi-change" },
        el("span", { class: p.inside_noise ? "noise" : dir, text: `${dir === "up" ? "▲" : "▼"} ${amount} vs the previous ${p.buckets.length} period${p.buckets.length === 1 ? "" : "s"} (${f(p.value)})` }),
        el("div", { class: "small muted verdict", text: verdict }));
    } else {
      change = el("div", { class: "kpi-change muted", text: `No comparison: ${k.missing_previous || "nothing released in this range"}.` });
    }
    tile.append(change);
  }
  return tile;
}

function panel(view, kpi, filters) {
  const agg = (view.query && view.query.aggregates && view.query.aggregates[0]) || {};
  const f = money({ currency: isCurrency(agg) });
  const releases = kpi.in_range;
  const labels = releases.map((r) => r.bucket);
  const soFar = releases.map((r) => r.state === "so_far");
  const series = new Map();
  releases.forEach((r, i) => {
    for (const c of cellsOf(r)) {
      if (!passes(c.group, filters)) continue;
      const name = c.label || agg.name || "total";
      if (!series.has(name)) series.set(name, { name, value: labels.map(() => null), lower: labels.map(() => null), upper: labels.map(() => null), total: 0 });
      const s = series.get(name);
      if (c.cell.hidden || !Number.isFinite(c.cell.value)) continue; // drawn as a gap; the table says "hidden"
      s.value[i] = c.cell.value;
      s.lower[i] = c.cell.lower;
      s.upper[i] = c.cell.upper;
      s.total += c.cell.value;
    }
  });
  const all = [...series.values()].sort((a, b) => b.total - a.total);
  const shown = all.slice(0, SERIES_IN_CHART);
  const datasets = [];
  shown.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    datasets.push({ label: `${s.name} lower`, role: "band-lower", data: s.lower, borderWidth: 0, pointRadius: 0, fill: false, borderColor: "transparent", tension: 0 });
    datasets.push({ label: `${s.name} 95% interval`, role: "band-upper", data: s.upper, borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: alpha(color, 0.16), borderColor: "transparent", tension: 0 });
    datasets.push({
      label: s.name, role: "value", data: s.value, borderColor: color, backgroundColor: color, borderWidth: 2,
      tension: 0, // noisy numbers: straight segments, no smoothing that invents a trend
      fill: false, spanGaps: false,
      pointRadius: labels.length > 60 ? 0 : 3,
      pointBackgroundColor: soFar.map((x) => (x ? "#fff" : color)),
      segment: { borderDash: (ctx) => (soFar[ctx.p1DataIndex] ? [5, 4] : undefined) },
    });
  });
  const canvas = el("canvas", { role: "img", "aria-label": `${view.name}: released values with 95% intervals` });
  const card = el("section", { class: "card panel", "data-view": view.id },
    el("div", { class: "card-head" }, el("h2", { text: view.name }),
      el("span", { class: "muted small", text: `released every ${view.cadence} · ε ${fmtEps(view.epsilon)} per release · read free` })),
    el("div", { class: "chart-box" }, canvas),
    el("p", { class: "muted small", text: (all.length > shown.length ? `chart shows the ${shown.length} largest of ${all.length}; the table has all · ` : "") +
      "shaded: 95% interval · hollow point, dashed line: so far (not closed)" }),
    rollupTable(view, agg, filters, f),
    table(view, releases, filters, f));
  const chart = new Chart(canvas, {
    type: "line",
    data: { labels, datasets },
    options: {
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { grid: { display: false } },
        y: { beginAtZero: agg.op === "count" || agg.op === "distinct_customers", grid: { color: "#eef1f5" }, ticks: { callback: (v) => f(v) } },
      },
      plugins: {
        legend: { labels: { filter: (item, data) => data.datasets[item.datasetIndex].role === "value", boxWidth: 12 } },
        tooltip: {
          filter: (item) => item.dataset.role === "value",
          callbacks: {
            label: (ctx) => {
              const s = shown[Math.floor(ctx.datasetIndex / 3)];
              return `${s.name}: ${f(ctx.parsed.y)}  [${f(s.lower[ctx.dataIndex])}, ${f(s.upper[ctx.dataIndex])}]${soFar[ctx.dataIndex] ? " so far" : ""}`;
            },
          },
        },
      },
    },
  });
  state.charts.panels.push(chart);
  state.dash.panels.push({ view_id: view.id, chart });
  return card;
}

// rollupTable lists the quarters that overlap the range, for all groups
// together or for the filtered group, as the server rolled them up.
function rollupTable(view, agg, filters, f) {
  const dash = state.dash;
  const from = new Date(dash.range.from + "T00:00:00Z"), to = new Date(dash.range.to + "T00:00:00Z");
  const want = Object.entries(filters).filter(([col]) => ((view.query && view.query.group_by) || []).some((g) => g.column === col));
  const rows = (dash.rollups[view.id] || []).filter((r) => {
    const m = /^(\d{4})-Q([1-4])$/.exec(r.bucket);
    if (!m) return false;
    const qs = new Date(Date.UTC(Number(m[1]), (Number(m[2]) - 1) * 3, 1)), qe = new Date(Date.UTC(Number(m[1]), Number(m[2]) * 3, 1));
    if (!(qs < to && qe > from)) return false;
    const g = r.group || {};
    return Object.keys(g).length === want.length && want.every(([col, val]) => g[col] === val);
  });
  if (rows.length === 0) return null;
  const name = agg.name && rows[0].values[agg.name] !== undefined ? agg.name : Object.keys(rows[0].values || {})[0];
  if (name === undefined) return null; // only counts and sums roll up: an average of quarters is not a sum
  return el("div", { class: "rollup" },
    el("div", { class: "small muted", text: "Quarters: sums of the closed periods, made to add up, free to read" }),
    el("table", { class: "rollup-table", "data-view": view.id },
      el("tbody", {}, ...rows.map((r) => {
        const iv = (r.intervals || {})[name];
        return el("tr", { "data-bucket": r.bucket },
          el("td", { text: r.bucket }),
          el("td", { class: "num", text: f(r.values[name]) }),
          el("td", { class: "num interval", text: iv ? `${f(iv[0])} to ${f(iv[1])}` : "" }),
          el("td", { class: "state", text: r.complete ? "complete" : `${r.buckets} period${r.buckets === 1 ? "" : "s"} so far` }));
      }))));
}

function table(view, releases, filters, f) {
  const head = el("tr", {}, el("th", { text: "period" }), el("th", { text: "group" }), el("th", { class: "num", text: "value" }),
    el("th", { class: "num", text: "95% interval" }), el("th", { text: "state" }));
  const rows = [];
  for (const r of releases) {
    for (const c of cellsOf(r)) {
      if (!passes(c.group, filters)) continue;
      const hidden = !!c.cell.hidden || !Number.isFinite(c.cell.value);
      const tr = el("tr", { class: r.state === "so_far" ? "so-far" : "", "data-bucket": r.bucket, "data-group": c.label },
        el("td", { text: r.bucket }),
        el("td", { text: c.label || "total" }));
      if (hidden) {
        // Too few customers for this ε: the number is noise, so it is not shown.
        tr.append(el("td", { class: "hidden-cell", colSpan: 2, text: "hidden", title: c.cell.reason || "too few customers for this ε" }));
      } else {
        tr.append(el("td", { class: "num", text: f(c.cell.value), "data-value": String(c.cell.value) }),
          el("td", { class: "num interval", text: `${f(c.cell.lower)} to ${f(c.cell.upper)}` }));
      }
      tr.append(el("td", { class: "state", text: r.state === "so_far" ? "so far" : "closed" }));
      rows.push(tr);
    }
  }
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 5, class: "muted", text: "Nothing released in this range yet." })));
  return el("div", { class: "table-wrap" }, el("table", { class: "release-table", "data-view": view.id }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

// ---------------------------------------------------------------- share links

async function createShare() {
  const dash = state.dash;
  if (!dash) return;
  setError($("share-error"), null);
  try {
    const s = await api("POST", `/v1/dashboards/${encodeURIComponent(dash.dashboard.id)}/share`, {});
    let url = new URL(s.url, location.origin).href;
    if (!/[#&]dashboard=/.test(url)) url += `${url.includes("#") ? "&" : "#"}dashboard=${encodeURIComponent(dash.dashboard.id)}`;
    dash.shares.push({ id: s.id, url, revoked: false });
    renderShares();
  } catch (err) {
    setError($("share-error"), err);
  }
}

function renderShares() {
  const dash = state.dash;
  const list = $("share-list");
  if (!dash) { list.replaceChildren(); return; }
  const known = new Map(dash.shares.map((s) => [s.id, s]));
  for (const s of dash.dashboard.shares || []) if (!known.has(s.id)) dash.shares.push({ id: s.id, url: "", revoked: !!s.revoked });
  list.replaceChildren(...dash.shares.map((s) => {
    const li = el("li", { "data-share": s.id });
    if (s.url) li.append(el("input", { type: "text", readOnly: true, value: s.url, class: s.revoked ? "revoked share-url" : "share-url", "aria-label": "Share link" }));
    else li.append(el("span", { class: s.revoked ? "revoked" : "", text: `link ${s.id} (shown once, when it was made)` }));
    if (s.revoked) {
      li.append(el("span", { class: "muted", text: "revoked: the link no longer opens anything" }));
    } else {
      const b = el("button", { type: "button", class: "secondary revoke", text: "Revoke" });
      b.addEventListener("click", async () => {
        try {
          await api("DELETE", `/v1/dashboards/${encodeURIComponent(dash.dashboard.id)}/share/${encodeURIComponent(s.id)}`);
          s.revoked = true;
          renderShares();
        } catch (err) {
          setError($("share-error"), err);
        }
      });
      li.append(b);
    }
    return li;
  }));
}
