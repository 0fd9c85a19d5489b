// The study page: score and facts, the AI findings as text with key images (SEG outlined),
// claim / release / mark read with a verdict per finding, and a link to an external viewer.

import {
  ApiError,
  Unauthorized,
  apiUrl,
  badge,
  canRead,
  duration,
  element,
  getJson,
  imageUrl,
  listen,
  personName,
  postJson,
  scoreDetails,
  session,
  slaText,
  statusText,
} from "./api.js";

const $ = (id) => document.getElementById(id);
const uid = new URLSearchParams(window.location.search).get("study") || "";
const images = new Map();

function fact(term, ...value) {
  return [element("dt", { text: term }), element("dd", {}, ...value)];
}

function findingText(finding) {
  const parts = [
    `${finding.code_meaning}: ${finding.present ? "present" : "not present"}`,
    `probability ${finding.probability.toFixed(2)}`,
  ];
  if (finding.volume_ml !== null) {
    parts.push(`volume ${finding.volume_ml.toFixed(1)} ml`);
  }
  if (finding.location) {
    parts.push(`location ${finding.location}`);
  }
  return parts.join("; ");
}

async function showImage(img, path) {
  if (!images.has(path)) {
    images.set(path, await imageUrl(path));
  }
  img.src = images.get(path);
}

function keyImage(finding) {
  const key = finding.key_image;
  if (!key) {
    return element("p", { class: "note", text: "No key image is stored for this finding." });
  }
  const overlay = Boolean(key.segmentation_uid);
  const describe = (withOverlay) =>
    `Key image of ${finding.label}` + (withOverlay ? ", AI segmentation outlined in red" : ", without overlay");
  const img = element("img", { class: "key-image", alt: describe(overlay), "data-finding": finding.id });
  const caption = overlay
    ? "The slice where the AI segmentation is largest."
    : "The middle image of the series the model read.";
  const figure = element("figure", {}, img, element("figcaption", { text: caption }));
  showImage(img, key.overlay_url).catch((error) => ($("study-error").textContent = String(error.message || error)));
  if (overlay) {
    const toggle = element("button", { type: "button", text: "Hide overlay", "aria-pressed": "true" });
    toggle.addEventListener("click", async () => {
      const on = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(on));
      toggle.textContent = on ? "Hide overlay" : "Show overlay";
      img.alt = describe(on);
      await showImage(img, on ? key.overlay_url : key.rendered_url);
    });
    figure.append(toggle);
  }
  return figure;
}

function verdictField(finding, given) {
  const name = `verdict-${finding.id}`;
  const option = (value, label) =>
    element(
      "label",
      { class: "choice" },
      element("input", { type: "radio", name, value, checked: value === "none", disabled: given }),
      ` ${label}`,
    );
  return element(
    "fieldset",
    { class: "verdict" },
    element("legend", { text: `Your verdict on ${finding.label}` }),
    option("agree", "Agree"),
    option("disagree", "Disagree"),
    option("none", "No verdict"),
  );
}

function render(study) {
  const item = study.item;
  const me = session();
  document.title = `${personName(item.patient_name)} - pacs-ai`;
  $("study-title").textContent = `${personName(item.patient_name)} (${item.patient_id})`;
  $("facts").replaceChildren(
    ...fact("Accession", item.accession_number || "-"),
    ...fact("Modality", [item.modalities.join(", "), item.body_parts.join(", ")].filter(Boolean).join(" / ")),
    ...fact("Description", item.description || "-"),
    ...fact("Arrived", new Date(item.arrived_at).toLocaleString()),
    ...fact("Waiting", duration(item.waited_minutes)),
    ...fact("SLA", item.status === "read" ? "-" : slaText(item.deadline)),
    ...fact("AI", ...item.badges.map(badge)),
    ...fact("Score", scoreDetails(item.score)),
    ...fact("Status", `${statusText(item.status)}${item.reader ? ` (${item.reader})` : ""}`),
  );
  const mine = item.reader === me.username;
  $("claim").hidden = item.status !== "unread";
  $("release").hidden = !(item.status === "in_progress" && (mine || me.role === "admin"));
  const readable = item.status === "unread" || (item.status === "in_progress" && mine);
  $("mark-read").hidden = !readable;
  $("state").textContent =
    item.status === "read" ? `Read by ${item.reader} at ${new Date(item.read_at).toLocaleString()}` : "";
  const viewer = $("viewer");
  viewer.hidden = !study.viewer_url;
  if (study.viewer_url) {
    viewer.href = study.viewer_url;
  }
  const given = new Map(study.verdicts.map((v) => [v.finding_id, v]));
  $("findings").replaceChildren(
    ...(study.findings.length
      ? study.findings.map((finding) => {
          const verdict = given.get(finding.id);
          return element(
            "article",
            { class: "finding", "data-finding": finding.id },
            element("h4", {}, badge({ ...finding, text: `${finding.label} ${finding.probability.toFixed(2)}`, model: `${finding.model_name} ${finding.model_version}` })),
            element("p", { text: findingText(finding) }),
            element("p", { class: "note", text: `Model ${finding.model_name} ${finding.model_version}` }),
            verdict
              ? element("p", { text: `Verdict of ${verdict.reader}: ${verdict.agrees ? "agrees" : "disagrees"}` })
              : readable
                ? verdictField(finding, false)
                : null,
            keyImage(finding),
          );
        })
      : [element("p", { text: "No AI findings for this study." })]),
  );
  $("study-view").hidden = false;
}

async function load() {
  try {
    render(await getJson(`api/worklist/${encodeURIComponent(uid)}`));
    $("study-error").textContent = "";
  } catch (error) {
    fail(error);
  }
}

function fail(error) {
  if (error instanceof Unauthorized) {
    window.location.href = apiUrl("ui/").toString();
    return;
  }
  $("study-error").textContent = error instanceof ApiError ? error.message : String(error);
}

async function act(action, payload) {
  try {
    await postJson(`api/worklist/${encodeURIComponent(uid)}/${action}`, payload);
    await load();
    $("state").textContent ||= { claim: "Claimed.", release: "Released." }[action] || "";
  } catch (error) {
    fail(error);
  }
}

function verdicts() {
  const chosen = [];
  for (const input of document.querySelectorAll("#findings input[type=radio]:checked")) {
    if (input.value !== "none") {
      chosen.push({ finding_id: Number(input.name.split("-")[1]), agrees: input.value === "agree" });
    }
  }
  return chosen;
}

function init() {
  if (!canRead(session())) {
    window.location.href = apiUrl("ui/").toString();
    return;
  }
  $("claim").addEventListener("click", () => act("claim"));
  $("release").addEventListener("click", () => act("release"));
  $("read-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("read", { verdicts: verdicts() });
  });
  listen("api/worklist/events", {
    onEvent: (name, data) => {
      if (name !== "ready" && data.study_uids.includes(uid)) {
        load();
      }
    },
    onState: () => undefined,
    signal: new AbortController().signal,
  });
  load();
}

init();
