// The models page: registered versions grouped by model with their operations, one version's
// history and model card, state changes and rollback (each with a reason), and a dry-run
// replay of a version on stored studies.

import {
  ApiError,
  Unauthorized,
  canOperate,
  dateTime,
  element,
  getJson,
  request,
  setupPage,
} from "./api.js";

const $ = (id) => document.getElementById(id);
const STATE_TEXT = { active: "Active", shadow: "Shadow", inactive: "Inactive" };
const VERB = { active: "activate", shadow: "put in shadow", inactive: "deactivate" };

const state = { versions: [], selected: null };
let page = null;

function path(name, version) {
  const base = `api/models/${encodeURIComponent(name)}`;
  return version === undefined ? base : `${base}/${encodeURIComponent(version)}`;
}

function quantiles(value, unit, digits = 0) {
  if (!value) {
    return "–";
  }
  const show = (v) => (v === null || v === undefined ? "–" : v.toFixed(digits));
  return `${show(value.p50)} / ${show(value.p95)} ${unit}`;
}

function placement(value) {
  const parts = Object.entries(value || {})
    .filter(([, count]) => count)
    .map(([device, count]) => `${device} ${count}`);
  return parts.join(", ") || "–";
}

function jobs(operations) {
  if (!operations) {
    return "–";
  }
  return `${operations.jobs} (${operations.done} done, ${operations.failed} failed, ${operations.waiting} waiting)`;
}

function stateBadge(value) {
  return element("span", { class: `state state-${value}`, text: STATE_TEXT[value] || value });
}

// ---- the list --------------------------------------------------------------------------

function versionRow(version) {
  const ops = version.operations || {};
  const selected = state.selected && state.selected.name === version.name && state.selected.version === version.version;
  return element(
    "tr",
    {
      "data-name": version.name,
      "data-version": version.version,
      "data-state": version.state,
      class: selected ? "selected" : "",
      "aria-current": selected ? "true" : null,
    },
    element("th", { scope: "row", text: version.version }),
    element("td", { class: "state-cell" }, stateBadge(version.state)),
    element("td", { text: (version.pipelines || []).join(", ") || "–" }),
    element("td", { text: `${dateTime(version.registered_at)} by ${version.registered_by || "?"}` }),
    element("td", { text: `${dateTime(version.state_changed_at)} by ${version.state_changed_by || "?"}${version.state_reason ? `: ${version.state_reason}` : ""}` }),
    element("td", { class: "number", text: jobs(ops) }),
    element("td", { class: "number", text: quantiles(ops.latency_ms, "ms") }),
    element("td", { class: "number", text: quantiles(ops.time_to_result_s, "s", 1) }),
    element("td", { text: placement(ops.placement) }),
    element(
      "td",
      {},
      element("button", {
        type: "button",
        text: "Details",
        "data-action": "open",
        "aria-label": `Details of ${version.name} ${version.version}`,
      }),
    ),
  );
}

function modelGroup(name, versions, index) {
  const reasonId = `rollback-reason-${index}`;
  const rollback = element(
    "form",
    { class: "rollback", "data-model": name, "aria-label": `Roll back ${name}` },
    element("label", { htmlFor: reasonId, text: `Reason for rolling back ${name}` }),
    element("textarea", { id: reasonId, name: "reason", rows: 1, maxLength: 1024, required: true }),
    element("button", { type: "submit", text: `Roll back ${name}` }),
  );
  const active = versions.find((v) => v.state === "active");
  return element(
    "section",
    { class: "model", "data-model": name, "aria-labelledby": `model-${index}` },
    element("h3", { id: `model-${index}`, text: name }),
    element("p", { class: "summary", text: active ? `Active version: ${active.version}` : "No active version" }),
    element(
      "div",
      { class: "table-wrap" },
      element(
        "table",
        { class: "versions", "aria-labelledby": `model-${index}` },
        element(
          "thead",
          {},
          element(
            "tr",
            {},
            ...["Version", "State", "Pipelines", "Registered", "Last change", "Jobs", "Latency p50 / p95", "Time to result p50 / p95", "Placement", "Action"].map((text) =>
              element("th", { scope: "col", text }),
            ),
          ),
        ),
        element("tbody", {}, ...versions.map(versionRow)),
      ),
    ),
    rollback,
  );
}

function renderList() {
  const groups = new Map();
  for (const version of state.versions) {
    if (!groups.has(version.name)) {
      groups.set(version.name, []);
    }
    groups.get(version.name).push(version);
  }
  const sections = [...groups.entries()].map(([name, versions], index) => modelGroup(name, versions, index));
  $("models").replaceChildren(...(sections.length ? sections : [element("p", { class: "empty", text: "No model is registered." })]));
  $("models-summary").textContent = `${groups.size} ${groups.size === 1 ? "model" : "models"}, ${state.versions.length} ${state.versions.length === 1 ? "version" : "versions"}`;
}

async function refreshList() {
  try {
    const body = await getJson("api/models");
    state.versions = body.versions || [];
    renderList();
    $("models-error").textContent = "";
  } catch (error) {
    handle(error, "models-error");
  }
}

// ---- one version -----------------------------------------------------------------------

function fact(term, value) {
  return [element("dt", { text: term }), element("dd", { text: value })];
}

function renderDetail(detail) {
  const ops = detail.operations || {};
  $("detail-title").textContent = `${detail.name} ${detail.version}`;
  $("facts").replaceChildren(
    ...fact("State", STATE_TEXT[detail.state] || detail.state),
    ...fact("Pipelines", (detail.pipelines || []).join(", ") || "–"),
    ...fact("Registered", `${dateTime(detail.registered_at)} by ${detail.registered_by || "?"}`),
    ...fact("Last change", `${dateTime(detail.state_changed_at)} by ${detail.state_changed_by || "?"}`),
    ...fact("Reason", detail.state_reason || "–"),
    ...fact("Weights SHA-256", detail.weights_sha256 || "–"),
    ...fact("Jobs", jobs(ops)),
    ...fact("Latency p50 / p95", quantiles(ops.latency_ms, "ms")),
    ...fact("Time to result p50 / p95", quantiles(ops.time_to_result_s, "s", 1)),
    ...fact("Placement", placement(ops.placement)),
  );
  for (const [id, value] of [["activate", "active"], ["shadow", "shadow"], ["deactivate", "inactive"]]) {
    $(id).disabled = detail.state === value;
  }
  const history = detail.history || [];
  $("history").tBodies[0].replaceChildren(
    ...(history.length
      ? history.map((change) =>
          element(
            "tr",
            {},
            element("td", { text: dateTime(change.at) }),
            element("td", { text: STATE_TEXT[change.from_state] || change.from_state || "–" }),
            element("td", { text: STATE_TEXT[change.to_state] || change.to_state }),
            element("td", { text: change.actor || "–" }),
            element("td", { text: change.reason || "" }),
          ),
        )
      : [element("tr", {}, element("td", { colSpan: 5, class: "empty", text: "No change recorded." }))]),
  );
  const card = $("model-card");
  if (detail.model_card_html) {
    // The one place this UI inserts markup: the server renders the bundle's MODEL_CARD.md
    // with raw HTML escaped (Markdown's own elements only), and the page's CSP
    // (default-src 'self', no inline script) stops any script or remote content anyway.
    card.innerHTML = detail.model_card_html;
    card.classList.remove("empty-card");
  } else {
    card.replaceChildren(element("p", { class: "note", text: "This bundle has no model card (MODEL_CARD.md)." }));
    card.classList.add("empty-card");
  }
  $("metadata").textContent = JSON.stringify(detail.metadata || {}, null, 2);
  $("detail").hidden = false;
}

async function loadDetail(name, version, { focus = false } = {}) {
  const changed = !state.selected || state.selected.name !== name || state.selected.version !== version;
  state.selected = { name, version };
  if (changed) {
    resetStateForm();
    $("state-reason").value = "";
    $("replay-error").textContent = "";
    $("replay-summary").textContent = "";
    $("replay").hidden = true;
  }
  for (const tr of document.querySelectorAll("#models tr[data-name]")) {
    const on = tr.dataset.name === name && tr.dataset.version === version;
    tr.classList.toggle("selected", on);
    if (on) {
      tr.setAttribute("aria-current", "true");
    } else {
      tr.removeAttribute("aria-current");
    }
  }
  try {
    renderDetail(await getJson(path(name, version)));
    $("state-error").textContent = "";
    if (focus) {
      $("detail-title").focus();
    }
  } catch (error) {
    handle(error, "models-error");
  }
}

// ---- state changes and rollback --------------------------------------------------------

function resetStateForm() {
  $("replace-confirm").hidden = true;
  $("replace-active").checked = false;
  $("replace-message").textContent = "";
  $("state-error").textContent = "";
}

function otherActive(name, version) {
  return state.versions.find((v) => v.name === name && v.version !== version && v.state === "active");
}

async function changeState(event) {
  event.preventDefault();
  const wanted = event.submitter ? event.submitter.value : "";
  const selected = state.selected;
  if (!wanted || !selected) {
    return;
  }
  const reason = $("state-reason").value.trim();
  $("state-error").textContent = "";
  if (!reason) {
    $("state-error").textContent = "Give a reason for the change.";
    $("state-reason").focus();
    return;
  }
  const replace = wanted === "active" && !$("replace-confirm").hidden && $("replace-active").checked;
  const buttons = [...$("state-form").querySelectorAll("button")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    const answer = await request(`${path(selected.name, selected.version)}/state`, {
      method: "POST",
      payload: { state: wanted, reason, replace_active: replace },
    });
    if (!answer.ok) {
      const message = (answer.body && answer.body.error) || `The change was refused (${answer.status}).`;
      const active = otherActive(selected.name, selected.version);
      if (answer.status === 409 && wanted === "active" && active && !replace) {
        $("replace-message").textContent =
          `${selected.name} ${active.version} is active. Activating ${selected.version} makes ${active.version} inactive: ` +
          "tick the box and press Activate again to confirm.";
        $("replace-confirm").hidden = false;
        $("state-error").textContent = message;
        $("replace-active").focus();
      } else {
        $("state-error").textContent = message;
      }
      return;
    }
    resetStateForm();
    $("state-reason").value = "";
    $("models-status").textContent = `${selected.name} ${selected.version} is now ${(STATE_TEXT[answer.body.state] || wanted).toLowerCase()}.`;
    await refreshList();
    await loadDetail(selected.name, selected.version);
  } catch (error) {
    handle(error, "state-error");
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    const current = state.versions.find((v) => selected && v.name === selected.name && v.version === selected.version);
    if (current) {
      for (const [id, value] of [["activate", "active"], ["shadow", "shadow"], ["deactivate", "inactive"]]) {
        $(id).disabled = current.state === value;
      }
    }
  }
}

async function rollback(form) {
  const name = form.dataset.model;
  const reason = form.elements.reason.value.trim();
  $("models-error").textContent = "";
  $("models-status").textContent = "";
  if (!reason) {
    $("models-error").textContent = `Give a reason for rolling back ${name}.`;
    form.elements.reason.focus();
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const answer = await request(`${path(name)}/rollback`, { method: "POST", payload: { reason } });
    if (!answer.ok) {
      $("models-error").textContent = (answer.body && answer.body.error) || `The rollback was refused (${answer.status}).`;
      return;
    }
    const { activated, deactivated } = answer.body;
    $("models-status").textContent =
      `Rolled back ${name}: ${activated.version} is active again` + (deactivated ? `, ${deactivated.version} is ${deactivated.state}.` : ".");
    await refreshList();
    if (state.selected && state.selected.name === name) {
      await loadDetail(name, state.selected.version);
    }
  } catch (error) {
    handle(error, "models-error");
  } finally {
    button.disabled = false;
  }
}

// ---- replay ----------------------------------------------------------------------------

function call(value) {
  if (!value) {
    return "–";
  }
  return `${value.present ? "present" : "not present"} (${value.probability.toFixed(2)})`;
}

async function replay(event) {
  event.preventDefault();
  const selected = state.selected;
  if (!selected) {
    return;
  }
  const form = $("replay-form");
  const query = {};
  for (const key of ["Modality", "StudyDate", "PatientID"]) {
    const value = form.elements[key].value.trim();
    if (value) {
      query[key] = value;
    }
  }
  const pipeline = form.elements.pipeline.value.trim() || null;
  const limit = Number(form.elements.limit.value) || 20;
  $("replay-error").textContent = "";
  $("replay-summary").textContent = `Running ${selected.name} ${selected.version} on the matching studies…`;
  $("replay").hidden = true;
  const button = $("run-replay");
  button.disabled = true;
  try {
    const answer = await request(`${path(selected.name, selected.version)}/replay`, {
      method: "POST",
      payload: { query, pipeline, limit },
    });
    if (!answer.ok) {
      $("replay-summary").textContent = "";
      $("replay-error").textContent = (answer.body && answer.body.error) || `The replay failed (${answer.status}).`;
      return;
    }
    const body = answer.body;
    const s = body.summary || {};
    $("replay-summary").textContent =
      `${body.model_name} ${body.model_version} on ${body.matched} matching studies (pipeline ${body.pipeline}), ` +
      `compared with ${body.compared_with || "no active version"}: ${s.ran} ran, ${s.failed} failed; ` +
      `both positive ${s.both_positive}, both negative ${s.both_negative}, ` +
      `only this version ${s.replay_only}, only the active one ${s.active_only}.`;
    $("replay").tBodies[0].replaceChildren(
      ...(body.results || []).map((r) =>
        element(
          "tr",
          { class: r.agrees === false ? "disagrees" : "" },
          element("td", { class: "uid", text: r.study_uid }),
          element("td", { class: "uid", text: r.series_uid || "–" }),
          element("td", { text: call(r.replay) }),
          element("td", { text: call(r.active) }),
          element("td", { text: r.agrees === null || r.agrees === undefined ? "–" : r.agrees ? "Yes" : "No" }),
          element("td", { text: r.error || "" }),
        ),
      ),
    );
    $("replay").hidden = false;
  } catch (error) {
    $("replay-summary").textContent = "";
    handle(error, "replay-error");
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ----------------------------------------------------------------------------

function handle(error, where) {
  if (error instanceof Unauthorized) {
    page.expired();
    return;
  }
  $(where).textContent = error instanceof ApiError ? error.message : String(error);
}

function init() {
  $("models").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action='open']");
    if (button) {
      const tr = button.closest("tr");
      loadDetail(tr.dataset.name, tr.dataset.version, { focus: true });
    }
  });
  $("models").addEventListener("submit", (event) => {
    const form = event.target.closest("form.rollback");
    if (form) {
      event.preventDefault();
      rollback(form);
    }
  });
  $("state-form").addEventListener("submit", changeState);
  $("replay-form").addEventListener("submit", replay);
  page = setupPage({
    view: "models-view",
    allowed: canOperate,
    refused: (me) => `Model operations are for ML engineers and administrators; your role is ${me.role}.`,
    start: () => refreshList(),
  });
}

init();
