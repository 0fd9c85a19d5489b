// The QA review page: the queue of AI findings to check, one finding with its key image,
// facts, the readers' verdicts and the review history, and the review form.
//
// Reviews are append-only (a second review supersedes the first and both stay in the
// history), so the form is always there: reviewing again is how a reviewer changes their mind.

import {
  ApiError,
  Unauthorized,
  canReview,
  dateTime,
  element,
  getJson,
  imageUrl,
  personName,
  request,
  setupPage,
} from "./api.js";

const PAGE = 25;
const $ = (id) => document.getElementById(id);

const REASON_TEXT = {
  positive: "Positive finding",
  negative_sample: "Sampled negative",
  reader_disagreed: "A reader disagreed",
  shadow_differs: "Shadow run differs",
};
const DECISION_TEXT = { accept: "Accept", reject: "Reject", correct: "Correct" };

const state = { offset: 0, selected: null, finding: null, reasons: null, imageUrl: null, page: null };

function reasonLabel(decision, code) {
  const known = state.reasons && (state.reasons[decision] || []).find((r) => r.code === code);
  return known ? known.label : code;
}

function findingSummary(finding) {
  const call = finding.present ? "present" : "not present";
  return `${finding.code_meaning}: ${call}, probability ${finding.probability.toFixed(2)}`;
}

function modelText(finding) {
  return `${finding.model_name} ${finding.model_version}${finding.shadow ? " (shadow)" : ""}`;
}

// ---- the queue -------------------------------------------------------------------------

function query() {
  const form = new FormData($("filters"));
  const params = new URLSearchParams();
  for (const name of ["reason", "model", "version"]) {
    const value = String(form.get(name) || "").trim();
    if (value) {
      params.set(name, value);
    }
  }
  if (form.get("include_reviewed")) {
    params.set("include_reviewed", "true");
  }
  params.set("limit", String(PAGE));
  params.set("offset", String(state.offset));
  return params;
}

function queueRow(item) {
  const finding = item.finding;
  const latest = item.latest_review;
  const reviews = item.reviews
    ? `${item.reviews}; latest ${DECISION_TEXT[latest.decision] || latest.decision} by ${latest.reviewer}`
    : "None";
  const selected = state.selected === finding.id;
  return element(
    "tr",
    { "data-finding": finding.id, class: selected ? "selected" : "", "aria-current": selected ? "true" : null },
    element(
      "th",
      { scope: "row", class: "patient" },
      element("span", { text: personName(finding.patient_name) }),
      element("small", { text: [finding.patient_id, finding.accession_number].filter(Boolean).join(" / ") }),
    ),
    element("td", { text: findingSummary(finding) }),
    element("td", { text: modelText(finding) }),
    element("td", {}, ...item.reasons.map((reason) => element("span", { class: `tag reason-${reason}`, text: REASON_TEXT[reason] || reason }))),
    element("td", { text: reviews }),
    element("td", { text: dateTime(finding.created_at) }),
    element(
      "td",
      {},
      element("button", {
        type: "button",
        text: "Review",
        "data-action": "open",
        "aria-label": `Review finding ${finding.id}: ${finding.code_meaning} of ${personName(finding.patient_name)}`,
      }),
    ),
  );
}

function renderQueue(page) {
  state.page = page;
  const body = $("queue").tBodies[0];
  body.replaceChildren(...page.items.map(queueRow));
  if (!page.items.length) {
    body.append(element("tr", {}, element("td", { colSpan: 7, class: "empty", text: "Nothing to review." })));
  }
  const first = page.total ? page.offset + 1 : 0;
  $("page-info").textContent = `${first}-${page.offset + page.items.length} of ${page.total}`;
  $("previous").disabled = page.offset === 0;
  $("next").disabled = page.next_offset === null || page.next_offset === undefined;
  $("queue-summary").textContent = `${page.total} ${page.total === 1 ? "finding" : "findings"} in the queue`;
  const names = new Set([...$("model-names").options].map((option) => option.value));
  for (const item of page.items) {
    if (!names.has(item.finding.model_name)) {
      names.add(item.finding.model_name);
      $("model-names").append(element("option", { value: item.finding.model_name }));
    }
  }
}

async function refreshQueue() {
  try {
    renderQueue(await getJson(`api/qa/queue?${query()}`));
    $("queue-error").textContent = "";
  } catch (error) {
    handle(error, "queue-error");
  }
}

// ---- one finding -----------------------------------------------------------------------

function fact(term, value) {
  return [element("dt", { text: term }), element("dd", { text: value })];
}

function facts(finding, reasons) {
  return [
    ...fact("Patient", `${personName(finding.patient_name)} (${finding.patient_id})`),
    ...fact("Accession", finding.accession_number || "–"),
    ...fact("Pipeline", finding.pipeline || "–"),
    ...fact("Model", finding.model_name),
    ...fact("Version", finding.model_version),
    ...fact("Run", finding.shadow ? "Shadow (not shown to readers)" : "Active"),
    ...fact("Finding", finding.code_meaning),
    ...fact("Present", finding.present ? "Yes" : "No"),
    ...fact("Probability", finding.probability.toFixed(3)),
    ...fact("Severity", finding.severity || "–"),
    ...fact("Volume", finding.volume_ml === null || finding.volume_ml === undefined ? "–" : `${finding.volume_ml.toFixed(1)} ml`),
    ...fact("Location", finding.location || "–"),
    ...fact("Status", finding.status),
    ...fact("Created", dateTime(finding.created_at)),
    ...fact("Why queued", reasons.length ? reasons.map((r) => REASON_TEXT[r] || r).join(", ") : "Not queued"),
  ];
}

function verdictList(verdicts) {
  if (!verdicts.length) {
    return element("p", { class: "note", text: "No reader gave a verdict on this finding." });
  }
  return element(
    "ul",
    { class: "verdicts" },
    ...verdicts.map((v) =>
      element(
        "li",
        {},
        element("strong", { text: `${v.reader}: ${v.agrees ? "agrees" : "disagrees"}` }),
        ` (${dateTime(v.created_at)})`,
        v.comment ? element("q", { text: v.comment }) : null,
      ),
    ),
  );
}

function correctionText(review) {
  const parts = [];
  if (review.corrected_location) {
    parts.push(`location ${review.corrected_location}`);
  }
  if (review.corrected_volume_ml !== null && review.corrected_volume_ml !== undefined) {
    parts.push(`volume ${review.corrected_volume_ml} ml`);
  }
  if (review.corrected_severity) {
    parts.push(`severity ${review.corrected_severity}`);
  }
  return parts.join("; ") || "–";
}

function historyRows(reviews) {
  if (!reviews.length) {
    return [element("tr", {}, element("td", { colSpan: 8, class: "empty", text: "Not reviewed yet." }))];
  }
  const latest = reviews[reviews.length - 1].id;
  return reviews.map((review) =>
    element(
      "tr",
      { "data-review": review.id, class: review.id === latest ? "latest" : "superseded" },
      element("td", { text: String(review.id) }),
      element("td", { text: dateTime(review.created_at) }),
      element("td", { text: review.reviewer }),
      element("td", { class: "decision", text: DECISION_TEXT[review.decision] || review.decision }),
      element("td", { text: reasonLabel(review.decision, review.reason) }),
      element("td", { text: review.comment || "" }),
      element("td", { text: correctionText(review) }),
      element("td", { text: review.supersedes ? `replaces #${review.supersedes}` : (review.id === latest ? "latest" : "") }),
    ),
  );
}

function activeFinding(active) {
  if (!active) {
    return null;
  }
  return element(
    "p",
    { class: "note" },
    `The active run (${active.model_name} ${active.model_version}) on this study says: ${findingSummary(active)}.`,
  );
}

async function showKeyImage(detail) {
  const finding = detail.finding;
  const img = $("key-image");
  if (state.imageUrl) {
    URL.revokeObjectURL(state.imageUrl);
    state.imageUrl = null;
  }
  img.removeAttribute("src");
  if (!detail.key_image_url) {
    img.hidden = true;
    img.alt = "";
    $("key-caption").textContent = "No key image is stored for this finding.";
    return;
  }
  img.hidden = false;
  img.alt =
    `Key image for finding ${finding.id}, ${finding.code_meaning} ` +
    `(${finding.present ? "present" : "not present"}); the AI segmentation, when there is one, is filled and outlined in red`;
  $("key-caption").textContent = "The image that best shows the finding; the middle image of the series when the model made no segmentation.";
  try {
    const url = await imageUrl(detail.key_image_url);
    if (state.selected !== finding.id) {
      URL.revokeObjectURL(url);
      return;
    }
    state.imageUrl = url;
    img.src = url;
  } catch (error) {
    if (error instanceof Unauthorized) {
      throw error;
    }
    img.hidden = true;
    $("key-caption").textContent = `The key image could not be made: ${error.message || error}`;
  }
}

function renderDetail(detail) {
  const finding = detail.finding;
  state.finding = finding;
  $("detail-title").textContent = `Finding ${finding.id}: ${finding.code_meaning}, ${personName(finding.patient_name)}`;
  $("facts").replaceChildren(...facts(finding, detail.reasons || []));
  $("active-finding").replaceChildren(...[activeFinding(detail.active_finding)].filter(Boolean));
  $("verdicts").replaceChildren(verdictList(detail.reader_verdicts || []));
  $("history").tBodies[0].replaceChildren(...historyRows(detail.reviews || []));
  const correct = document.querySelector('#review-form input[value="correct"]');
  correct.disabled = !finding.present;
  correct.closest("label").title = finding.present ? "" : "Only a positive finding can be corrected";
  if (!finding.present && correct.checked) {
    correct.checked = false;
    fillReasons();
  }
  $("detail").hidden = false;
}

async function loadDetail(id, { focus = false } = {}) {
  state.selected = id;
  for (const tr of $("queue").tBodies[0].rows) {
    const on = Number(tr.dataset.finding) === id;
    tr.classList.toggle("selected", on);
    if (on) {
      tr.setAttribute("aria-current", "true");
    } else {
      tr.removeAttribute("aria-current");
    }
  }
  try {
    const detail = await getJson(`api/qa/findings/${id}`);
    if (state.selected !== id) {
      return;
    }
    renderDetail(detail);
    $("detail-error").textContent = "";
    if (focus) {
      $("detail-title").focus();
    }
    await showKeyImage(detail);
  } catch (error) {
    $("detail").hidden = false;
    handle(error, "detail-error");
  }
}

// ---- the review form -------------------------------------------------------------------

function decision() {
  const chosen = document.querySelector('#review-form input[name="decision"]:checked');
  return chosen ? chosen.value : "";
}

function fillReasons() {
  const chosen = decision();
  const select = $("reason");
  const options = chosen && state.reasons ? state.reasons[chosen] || [] : [];
  select.replaceChildren(
    element("option", { value: "", text: chosen ? "Choose a reason" : "Choose a decision first" }),
    ...options.map((reason) => element("option", { value: reason.code, text: reason.label })),
  );
  select.disabled = !chosen;
  $("correction").hidden = chosen !== "correct";
}

async function loadReasons() {
  try {
    state.reasons = await getJson("api/qa/reasons");
    fillReasons();
  } catch (error) {
    handle(error, "review-error");
  }
}

function reviewPayload() {
  const form = $("review-form");
  const volume = form.elements.corrected_volume_ml.value.trim();
  const chosen = decision();
  const correcting = chosen === "correct";
  return {
    decision: chosen,
    reason: form.elements.reason.value,
    comment: form.elements.comment.value.trim(),
    corrected_location: correcting ? form.elements.corrected_location.value.trim() : "",
    corrected_volume_ml: correcting && volume !== "" ? Number(volume) : null,
    corrected_severity: correcting ? form.elements.corrected_severity.value : "",
  };
}

async function submitReview(event) {
  event.preventDefault();
  const id = state.selected;
  if (id === null) {
    return;
  }
  $("review-error").textContent = "";
  $("review-status").textContent = "";
  const payload = reviewPayload();
  if (!payload.decision || !payload.reason) {
    $("review-error").textContent = "Choose a decision and a reason.";
    return;
  }
  const button = $("submit-review");
  button.disabled = true;
  try {
    const answer = await request(`api/qa/findings/${id}/reviews`, { method: "POST", payload });
    if (!answer.ok) {
      $("review-error").textContent = (answer.body && answer.body.error) || `The review was refused (${answer.status}).`;
      return;
    }
    const review = answer.body;
    const form = $("review-form");
    form.reset();
    fillReasons();
    $("review-status").textContent =
      `Saved: ${DECISION_TEXT[review.decision] || review.decision}, ${reasonLabel(review.decision, review.reason)}` +
      (review.supersedes ? ` (replaces review #${review.supersedes}).` : ".");
    await Promise.all([loadDetail(id), refreshQueue()]);
  } catch (error) {
    handle(error, "review-error");
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ----------------------------------------------------------------------------

let page = null;

function handle(error, where) {
  if (error instanceof Unauthorized) {
    page.expired();
    return;
  }
  $(where).textContent = error instanceof ApiError ? error.message : String(error);
}

let pending = null;
function refreshSoon() {
  clearTimeout(pending);
  pending = setTimeout(refreshQueue, 200);
}

function start() {
  const wanted = Number(new URLSearchParams(window.location.search).get("finding"));
  loadReasons();
  refreshQueue();
  if (wanted > 0) {
    loadDetail(wanted);
  }
}

function init() {
  const filters = $("filters");
  filters.addEventListener("submit", (event) => event.preventDefault());
  filters.addEventListener("input", () => {
    state.offset = 0;
    refreshSoon();
  });
  filters.addEventListener("reset", () => {
    state.offset = 0;
    setTimeout(refreshQueue, 0);
  });
  $("previous").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    refreshQueue();
  });
  $("next").addEventListener("click", () => {
    state.offset += PAGE;
    refreshQueue();
  });
  $("queue").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action='open']");
    if (button) {
      loadDetail(Number(button.closest("tr").dataset.finding), { focus: true });
    }
  });
  const form = $("review-form");
  form.addEventListener("change", (event) => {
    if (event.target.name === "decision") {
      fillReasons();
    }
  });
  form.addEventListener("submit", submitReview);
  fillReasons();
  page = setupPage({
    view: "qa-view",
    allowed: canReview,
    refused: (me) => `QA review is for QA staff and administrators; your role is ${me.role}.`,
    start,
  });
}

init();
