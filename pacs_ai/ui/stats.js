// The statistics page: agreement of each model version with QA review (PPV, estimated
// sensitivity and specificity), readers' agreement, positive-rate drift, shadow against
// active, and plots drawn as inline SVG from DOM calls (no library, no markup from data).

import {
  ApiError,
  Unauthorized,
  canSeeStatistics,
  download,
  element,
  getJson,
  interval,
  setupPage,
} from "./api.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// Distinguishable for colour-blind readers (Okabe-Ito, darkened for 3:1 against white), and
// every series also differs by dash or marker, so colour is never the only cue.
const COLOURS = ["#0b4f9c", "#b24a00", "#1e6b34", "#8a2a6e", "#00616e", "#6b5a00"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2", "10 4"];
const METRICS = [
  { key: "ppv", text: "PPV" },
  { key: "sensitivity", text: "Sensitivity" },
  { key: "specificity", text: "Specificity" },
  { key: "reader", text: "Reader agreement" },
];

let page = null;

// ---- SVG helpers -----------------------------------------------------------------------

function svgNode(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== "") {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined) {
      continue;
    }
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function chart(id, width, height, label) {
  const title = svgNode("title", { id: `${id}-title` }, label);
  return svgNode(
    "svg",
    { id, role: "img", "aria-label": label, viewBox: `0 0 ${width} ${height}`, width, height, class: "chart" },
    title,
  );
}

function yAxis(svg, { left, right, top, bottom, max, format, ticks = 4 }) {
  for (let i = 0; i <= ticks; i += 1) {
    const value = (max * i) / ticks;
    const y = bottom - ((bottom - top) * i) / ticks;
    svg.append(
      svgNode("line", { x1: left, x2: right, y1: y, y2: y, class: i ? "grid" : "axis" }),
      svgNode("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, format(value)),
    );
  }
}

function versionLabel(row) {
  return `${row.model_name} ${row.model_version}${row.shadow ? " (shadow)" : ""}`;
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

// ---- plot 1: positive rate per day -----------------------------------------------------

const DAY_MS = 86400000;

function ratePlot(rows) {
  const width = 600;
  const height = 300;
  const box = { left: 48, right: width - 12, top: 12, bottom: height - 70 };
  const days = rows.flatMap((row) => (row.daily || []).map((d) => Date.parse(`${d.day}T00:00:00Z`)));
  const summary = rows
    .map((row) => `${versionLabel(row)}: ${(row.daily || []).length} days, overall ${percent(row.positive_rate)}`)
    .join("; ");
  const svg = chart("rate-chart", width, height, `Line chart of the daily positive rate per model version. ${summary || "No findings in the period."}`);
  yAxis(svg, { ...box, max: 1, format: percent });
  if (!days.length) {
    svg.append(svgNode("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty-plot" }, "No findings in the period"));
    return svg;
  }
  const first = Math.min(...days);
  const last = Math.max(...days);
  const span = Math.max(last - first, DAY_MS);
  const x = (t) => (last === first ? (box.left + box.right) / 2 : box.left + ((t - first) / span) * (box.right - box.left));
  const y = (rate) => box.bottom - rate * (box.bottom - box.top);
  const stamp = (t) => new Date(t).toISOString().slice(0, 10);
  if (first === last) {
    svg.append(svgNode("text", { x: x(first), y: box.bottom + 16, "text-anchor": "middle", class: "tick" }, stamp(first)));
  } else {
    svg.append(
      svgNode("text", { x: box.left, y: box.bottom + 16, "text-anchor": "start", class: "tick" }, stamp(first)),
      svgNode("text", { x: box.right, y: box.bottom + 16, "text-anchor": "end", class: "tick" }, stamp(last)),
    );
  }
  rows.forEach((row, index) => {
    const colour = COLOURS[index % COLOURS.length];
    const points = (row.daily || []).map((d) => [x(Date.parse(`${d.day}T00:00:00Z`)), y(d.rate), d]);
    const group = svgNode("g", { class: "series" });
    group.append(
      svgNode("polyline", {
        points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "),
        fill: "none",
        stroke: colour,
        "stroke-width": 2,
        "stroke-dasharray": DASHES[index % DASHES.length],
      }),
    );
    for (const [px, py, d] of points) {
      group.append(
        svgNode(
          "circle",
          { cx: px.toFixed(1), cy: py.toFixed(1), r: 3.5, fill: colour },
          svgNode("title", {}, `${versionLabel(row)}, ${d.day}: ${d.positives} of ${d.findings} positive (${percent(d.rate)})`),
        ),
      );
    }
    svg.append(group);
    const legendY = box.bottom + 36 + Math.floor(index / 2) * 16;
    const legendX = box.left + (index % 2) * 270;
    svg.append(
      svgNode("line", { x1: legendX, x2: legendX + 24, y1: legendY - 4, y2: legendY - 4, stroke: colour, "stroke-width": 2, "stroke-dasharray": DASHES[index % DASHES.length] }),
      svgNode("text", { x: legendX + 30, y: legendY, class: "legend" }, versionLabel(row)),
    );
  });
  return svg;
}

// ---- plot 2: agreement bars with interval whiskers -------------------------------------

function metricValue(row, key) {
  return key === "reader" ? (row.reader_agreement ? row.reader_agreement.rate : null) : row[key];
}

function agreementPlot(rows) {
  const width = 600;
  const height = 300;
  const box = { left: 48, right: width - 12, top: 12, bottom: height - 70 };
  const described = rows
    .map((row) => `${versionLabel(row)}: ${METRICS.map((m) => `${m.text} ${interval(metricValue(row, m.key))}`).join(", ")}`)
    .join("; ");
  const svg = chart("agreement-chart", width, height, `Bar chart of PPV, sensitivity, specificity and reader agreement per model version with 95% intervals. ${described || "No findings in the period."}`);
  yAxis(svg, { ...box, max: 1, format: (v) => v.toFixed(2) });
  if (!rows.length) {
    svg.append(svgNode("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty-plot" }, "No findings in the period"));
    return svg;
  }
  const y = (v) => box.bottom - v * (box.bottom - box.top);
  const groupWidth = (box.right - box.left) / rows.length;
  const barWidth = Math.min(28, (groupWidth - 16) / METRICS.length);
  rows.forEach((row, g) => {
    const start = box.left + g * groupWidth + (groupWidth - barWidth * METRICS.length) / 2;
    METRICS.forEach((metric, m) => {
      const value = metricValue(row, metric.key);
      const bx = start + m * barWidth;
      const cx = bx + barWidth / 2;
      if (!value || value.value === null || value.value === undefined) {
        svg.append(svgNode("text", { x: cx, y: box.bottom - 4, "text-anchor": "middle", class: "tick na" }, "n/a"));
        return;
      }
      svg.append(
        svgNode(
          "rect",
          {
            x: (bx + 1).toFixed(1),
            y: y(value.value).toFixed(1),
            width: (barWidth - 2).toFixed(1),
            height: (box.bottom - y(value.value)).toFixed(1),
            fill: COLOURS[m],
            class: `bar metric-${metric.key}`,
          },
          svgNode("title", {}, `${versionLabel(row)}, ${metric.text}: ${interval(value)}`),
        ),
      );
      if (value.low !== null && value.low !== undefined) {
        const cap = Math.min(6, barWidth / 3);
        svg.append(
          svgNode("line", { x1: cx, x2: cx, y1: y(value.low), y2: y(value.high), class: "whisker" }),
          svgNode("line", { x1: cx - cap, x2: cx + cap, y1: y(value.low), y2: y(value.low), class: "whisker" }),
          svgNode("line", { x1: cx - cap, x2: cx + cap, y1: y(value.high), y2: y(value.high), class: "whisker" }),
        );
      }
    });
    svg.append(
      svgNode("text", { x: box.left + (g + 0.5) * groupWidth, y: box.bottom + 16, "text-anchor": "middle", class: "tick" }, versionLabel(row)),
    );
  });
  METRICS.forEach((metric, m) => {
    const lx = box.left + m * 130;
    svg.append(
      svgNode("rect", { x: lx, y: height - 28, width: 12, height: 12, fill: COLOURS[m] }),
      svgNode("text", { x: lx + 18, y: height - 18, class: "legend" }, metric.text),
    );
  });
  return svg;
}

// ---- plot 3: latency per version -------------------------------------------------------

// The smallest 1, 2 or 5 times a power of ten at or above `value` (100 ms when nothing ran),
// so that the axis ticks are round numbers.
function niceCeiling(value) {
  if (!(value > 0)) {
    return 100;
  }
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((m) => m * power >= value);
  return step * power;
}

function latencyPlot(versions) {
  const width = 600;
  const height = 300;
  const box = { left: 64, right: width - 12, top: 12, bottom: height - 70 };
  const measured = versions.filter((v) => v.operations && v.operations.latency_ms);
  const described = versions
    .map((v) => {
      const latency = v.operations && v.operations.latency_ms;
      return `${v.name} ${v.version}: ${latency ? `p50 ${Math.round(latency.p50)} ms, p95 ${Math.round(latency.p95)} ms` : "not measured"}`;
    })
    .join("; ");
  const svg = chart("latency-chart", width, height, `Bar chart of inference latency (p50 and p95, milliseconds) per model version. ${described || "No model versions registered."}`);
  const max = niceCeiling(Math.max(0, ...measured.map((v) => Math.max(v.operations.latency_ms.p95 || 0, v.operations.latency_ms.p50 || 0))));
  const digits = max < 4 ? 1 : 0;
  yAxis(svg, { ...box, max, format: (v) => `${v.toFixed(digits)} ms` });
  if (!versions.length) {
    svg.append(svgNode("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty-plot" }, "No model versions registered"));
    return svg;
  }
  const y = (v) => box.bottom - (v / max) * (box.bottom - box.top);
  const groupWidth = (box.right - box.left) / versions.length;
  const barWidth = Math.min(32, (groupWidth - 12) / 2);
  versions.forEach((version, g) => {
    const latency = version.operations && version.operations.latency_ms;
    const centre = box.left + (g + 0.5) * groupWidth;
    svg.append(svgNode("text", { x: centre, y: box.bottom + 16, "text-anchor": "middle", class: "tick" }, `${version.name} ${version.version}`));
    if (!latency) {
      svg.append(svgNode("text", { x: centre, y: box.bottom - 4, "text-anchor": "middle", class: "tick na" }, "not measured"));
      return;
    }
    [
      ["p50", latency.p50, COLOURS[0]],
      ["p95", latency.p95, COLOURS[1]],
    ].forEach(([name, value, colour], i) => {
      if (value === null || value === undefined) {
        return;
      }
      const bx = centre - barWidth + i * barWidth;
      svg.append(
        svgNode(
          "rect",
          { x: (bx + 1).toFixed(1), y: y(value).toFixed(1), width: barWidth - 2, height: (box.bottom - y(value)).toFixed(1), fill: colour, class: `bar latency-${name}` },
          svgNode("title", {}, `${version.name} ${version.version}, ${name}: ${Math.round(value)} ms`),
        ),
      );
    });
  });
  [["p50", COLOURS[0]], ["p95", COLOURS[1]]].forEach(([name, colour], i) => {
    const lx = box.left + i * 100;
    svg.append(
      svgNode("rect", { x: lx, y: height - 28, width: 12, height: 12, fill: colour }),
      svgNode("text", { x: lx + 18, y: height - 18, class: "legend" }, `${name} latency`),
    );
  });
  return svg;
}

// ---- tables ----------------------------------------------------------------------------

function driftText(drift) {
  if (!drift) {
    return "–";
  }
  const rate = (value) => (value === null || value === undefined ? "–" : percent(value));
  const text = `${rate(drift.recent_rate)} / ${rate(drift.baseline_rate)}`;
  return drift.alert ? `${text} (alert)` : text;
}

function versionRow(row) {
  const reader = row.reader_agreement || {};
  return element(
    "tr",
    { "data-version": `${row.model_name} ${row.model_version}`, "data-shadow": String(Boolean(row.shadow)), class: row.drift && row.drift.alert ? "drifted" : "" },
    element("td", { text: row.pipeline }),
    element("th", { scope: "row", text: `${row.model_name} ${row.model_version}` }),
    element("td", { text: row.shadow ? "Shadow" : "Active" }),
    element("td", { class: "number", text: `${row.findings} (${row.positives} positive)` }),
    element("td", { class: "number", text: interval(row.positive_rate) }),
    element("td", { class: "number", text: `${row.reviewed} (TP ${row.tp}, FP ${row.fp}, TN ${row.tn}, FN ${row.fn})` }),
    element("td", { class: "number ppv", text: interval(row.ppv) }),
    element("td", { class: "number sensitivity", text: interval(row.sensitivity) }),
    element("td", { class: "number specificity", text: interval(row.specificity) }),
    element("td", { class: "number reader", text: reader.verdicts ? `${interval(reader.rate)}, ${reader.agreed} of ${reader.verdicts}` : "–" }),
    element("td", { class: "number", text: driftText(row.drift) }),
  );
}

function comparisonRow(c) {
  return element(
    "tr",
    {},
    element("td", { text: c.pipeline }),
    element("td", { text: c.model_name }),
    element("td", { text: c.active_version }),
    element("td", { text: c.shadow_version }),
    element("td", { class: "number", text: String(c.studies) }),
    element("td", { class: "number", text: String(c.both_positive) }),
    element("td", { class: "number", text: String(c.both_negative) }),
    element("td", { class: "number", text: String(c.shadow_only) }),
    element("td", { class: "number", text: String(c.active_only) }),
    element("td", { class: "number", text: interval(c.agreement) }),
    element("td", { class: "number", text: c.mean_abs_probability_difference === null || c.mean_abs_probability_difference === undefined ? "–" : c.mean_abs_probability_difference.toFixed(3) }),
  );
}

function emptyRow(columns, text) {
  return element("tr", {}, element("td", { colSpan: columns, class: "empty", text }));
}

function renderDrift(rows) {
  const banner = $("drift");
  const drifted = rows.filter((row) => row.drift && row.drift.alert);
  if (!drifted.length) {
    banner.replaceChildren();
    banner.hidden = true;
    return;
  }
  banner.replaceChildren(
    element("strong", { text: "Positive rate drift: " }),
    element(
      "ul",
      {},
      ...drifted.map((row) =>
        element("li", {
          text:
            `${row.pipeline}: ${versionLabel(row)} ${percent(row.drift.recent_rate)} recently ` +
            `(${row.drift.recent_findings} findings) against ${percent(row.drift.baseline_rate)} before ` +
            `(${row.drift.baseline_findings} findings)`,
        }),
      ),
    ),
  );
  banner.hidden = false;
}

// ---- loading ---------------------------------------------------------------------------

function localDay(value, offsetDays = 0) {
  // A date input's day at local midnight, as an ISO 8601 UTC time.
  const [year, month, day] = value.split("-").map(Number);
  return new Date(year, month - 1, day + offsetDays).toISOString();
}

function dateValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function query() {
  const form = new FormData($("period"));
  const params = new URLSearchParams();
  const since = String(form.get("since") || "");
  const until = String(form.get("until") || "");
  if (since) {
    params.set("since", localDay(since));
  }
  if (until) {
    params.set("until", localDay(until, 1)); // the whole of the last day
  }
  for (const name of ["pipeline", "model"]) {
    const value = String(form.get(name) || "").trim();
    if (value) {
      params.set(name, value);
    }
  }
  return params;
}

function rowsOf(body) {
  return body.versions || body.stats || body.items || [];
}

async function loadLatency(model) {
  try {
    const body = await getJson("api/models");
    const versions = (body.versions || []).filter((v) => !model || v.name === model);
    $("latency-plot").replaceChildren(latencyPlot(versions));
  } catch (error) {
    handle(error, "stats-error");
  }
}

async function load() {
  const params = query();
  $("stats-summary").textContent = "Loading…";
  const latency = loadLatency(params.get("model"));
  try {
    const body = await getJson(`api/qa/stats?${params}`);
    const rows = rowsOf(body);
    $("versions").tBodies[0].replaceChildren(...(rows.length ? rows.map(versionRow) : [emptyRow(11, "No findings in the period.")]));
    const comparisons = body.comparisons || [];
    $("comparisons").tBodies[0].replaceChildren(
      ...(comparisons.length ? comparisons.map(comparisonRow) : [emptyRow(11, "No shadow run shares studies with an active run in the period.")]),
    );
    renderDrift(rows);
    $("rate-plot").replaceChildren(ratePlot(rows));
    $("agreement-plot").replaceChildren(agreementPlot(rows));
    // `until` is exclusive: the period ends just before it.
    const period = body.since && body.until
      ? ` from ${new Date(body.since).toLocaleString()} to ${new Date(Date.parse(body.until) - 1000).toLocaleString()}`
      : "";
    $("stats-summary").textContent = `${rows.length} model versions with findings${period}.`;
    $("stats-error").textContent = "";
  } catch (error) {
    $("stats-summary").textContent = "";
    handle(error, "stats-error");
  }
  await latency;
}

function handle(error, where) {
  if (error instanceof Unauthorized) {
    page.expired();
    return;
  }
  $(where).textContent = error instanceof ApiError ? error.message : String(error);
}

async function saveCsv() {
  const params = query();
  const form = new FormData($("period"));
  const name = `pacs-ai-stats-${form.get("since") || "start"}-${form.get("until") || "now"}.csv`;
  try {
    await download(`api/qa/stats.csv?${params}`, name);
    $("stats-error").textContent = "";
  } catch (error) {
    handle(error, "stats-error");
  }
}

function init() {
  const today = new Date();
  $("until").value = dateValue(today);
  $("since").value = dateValue(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 90));
  $("drift").hidden = true;
  $("period").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("download").addEventListener("click", saveCsv);
  page = setupPage({
    view: "stats-view",
    allowed: canSeeStatistics,
    refused: (me) => `The statistics are for QA staff, ML engineers and administrators; your role is ${me.role}.`,
    start: () => load(),
  });
}

init();
