// The worklist page: log in, the ranked table, filters, paging, claims, live re-ordering.

import {
  ApiError,
  Unauthorized,
  badge,
  canRead,
  duration,
  element,
  getJson,
  homePage,
  listen,
  login,
  logout,
  personName,
  postJson,
  renderNav,
  scoreDetails,
  session,
  slaText,
  minutesUntil,
  statusText,
} from "./api.js";

const PAGE = 50;
const REFRESH_MS = 30000;
const $ = (id) => document.getElementById(id);

const state = { offset: 0, total: 0, items: [], flash: new Set(), stream: null, timer: null };

function show(view) {
  $("login-view").hidden = view !== "login";
  $("worklist-view").hidden = view !== "worklist";
  $("who").hidden = view !== "worklist";
}

function query() {
  const form = new FormData($("filters"));
  const params = new URLSearchParams();
  for (const name of ["modality", "body_part", "status", "reader"]) {
    const value = String(form.get(name) || "").trim();
    if (value) {
      params.set(name, value);
    }
  }
  if (form.get("critical")) {
    params.set("critical", "true");
  }
  params.set("limit", String(PAGE));
  params.set("offset", String(state.offset));
  return params;
}

function actions(item, me) {
  const cell = element("div", { class: "actions" });
  if (item.status === "unread") {
    cell.append(
      element("button", { type: "button", text: "Claim", "data-action": "claim", "aria-label": `Claim study of ${personName(item.patient_name)}` }),
    );
  }
  if (item.status === "in_progress" && (item.reader === me.username || me.role === "admin")) {
    cell.append(
      element("button", { type: "button", text: "Release", "data-action": "release", "aria-label": `Release study of ${personName(item.patient_name)}` }),
    );
  }
  cell.append(
    element("a", {
      href: `study.html?study=${encodeURIComponent(item.study_uid)}`,
      text: "Open",
      "data-action": "open",
      "aria-label": `Open study of ${personName(item.patient_name)}`,
    }),
  );
  return element("td", {}, cell);
}

function row(item, me) {
  const sla = element("td", { class: "sla", "data-deadline": item.deadline, text: slaText(item.deadline) });
  if (item.status !== "read" && minutesUntil(item.deadline) < 0) {
    sla.classList.add("overdue");
  }
  const classes = [`status-${item.status}`, `category-${item.score.category}`];
  if (state.flash.has(item.study_uid)) {
    classes.push("flash");
  }
  return element(
    "tr",
    { class: classes.join(" "), "data-study": item.study_uid },
    element("td", { class: "rank", text: item.rank ?? "" }),
    element(
      "th",
      { scope: "row", class: "patient" },
      element("span", { text: personName(item.patient_name) }),
      element("small", { text: item.patient_id }),
    ),
    element("td", { text: item.accession_number }),
    element("td", { text: [item.modalities.join(", "), item.body_parts.join(", ")].filter(Boolean).join(" / ") }),
    element("td", { text: item.description }),
    element("td", { class: "waiting", "data-arrived": item.arrived_at, text: duration(item.waited_minutes) }),
    sla,
    element("td", { class: "badges" }, ...item.badges.map(badge)),
    element("td", {}, scoreDetails(item.score)),
    element("td", { class: "status", text: statusText(item.status) }),
    element("td", { class: "reader", text: item.reader || "" }),
    actions(item, me),
  );
}

function render(page) {
  const me = session();
  const body = $("worklist").tBodies[0];
  const focused = document.activeElement;
  const focusRow = focused && focused.closest ? focused.closest("tr[data-study]") : null;
  const focusKey = focusRow ? [focusRow.dataset.study, focused.dataset.action || ""] : null;
  body.replaceChildren(...page.items.map((item) => row(item, me)));
  if (!page.items.length) {
    body.append(element("tr", {}, element("td", { colSpan: 12, class: "empty", text: "No studies match." })));
  }
  if (focusKey) {
    const again = body.querySelector(`tr[data-study="${CSS.escape(focusKey[0])}"]`);
    const target = again && (again.querySelector(`[data-action="${focusKey[1]}"]`) || again.querySelector("button, a"));
    if (target) {
      target.focus();
    }
  }
  state.total = page.total;
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.items.length;
  $("page-info").textContent = `${first}-${last} of ${page.total}`;
  $("previous").disabled = page.offset === 0;
  $("next").disabled = page.next_offset === null;
  $("summary").textContent = `${page.total} studies; ranked at ${new Date(page.computed_at).toLocaleTimeString()}`;
}

async function refresh() {
  try {
    const page = await getJson(`api/worklist?${query()}`);
    state.items = page.items;
    render(page);
    $("worklist-error").textContent = "";
  } catch (error) {
    handle(error, "worklist-error");
  }
}

let pending = null;
function refreshSoon() {
  clearTimeout(pending);
  pending = setTimeout(refresh, 150);
}

function handle(error, where) {
  if (error instanceof Unauthorized) {
    stop();
    renderNav(null);
    show("login");
    $("login-error").textContent = "Your session ended; please log in again.";
    return;
  }
  $(where).textContent = error instanceof ApiError ? error.message : String(error);
}

function onEvent(name, data) {
  if (name === "finding" || name === "study") {
    for (const uid of data.study_uids) {
      state.flash.add(uid);
      setTimeout(() => state.flash.delete(uid), 4000);
    }
    if (name === "finding") {
      $("announce").textContent = "New AI results: the worklist was re-ordered.";
    }
  }
  refreshSoon();
}

function start() {
  const me = session();
  $("user").textContent = `${me.username} (${me.role})`;
  renderNav(me);
  show("worklist");
  stop();
  const controller = new AbortController();
  state.stream = controller;
  listen("api/worklist/events", {
    onEvent,
    onState: (value) => {
      $("live").textContent = { live: "Live", reconnecting: "Reconnecting", ended: "Offline" }[value];
      $("live").dataset.state = value;
    },
    signal: controller.signal,
  });
  state.timer = setInterval(() => {
    for (const cell of document.querySelectorAll("td.sla[data-deadline]")) {
      cell.textContent = slaText(cell.dataset.deadline);
      cell.classList.toggle("overdue", minutesUntil(cell.dataset.deadline) < 0);
    }
    for (const cell of document.querySelectorAll("td.waiting[data-arrived]")) {
      cell.textContent = duration(-minutesUntil(cell.dataset.arrived));
    }
  }, 15000);
  state.refresher = setInterval(refresh, REFRESH_MS);
  refresh();
}

function stop() {
  if (state.stream) {
    state.stream.abort();
    state.stream = null;
  }
  clearInterval(state.timer);
  clearInterval(state.refresher);
}

async function act(button) {
  const tr = button.closest("tr[data-study]");
  const uid = tr.dataset.study;
  button.disabled = true;
  try {
    await postJson(`api/worklist/${encodeURIComponent(uid)}/${button.dataset.action}`);
    $("worklist-error").textContent = "";
  } catch (error) {
    handle(error, "worklist-error");
  }
  await refresh();
}

function moveFocus(event) {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") {
    return;
  }
  const tr = event.target.closest("tr[data-study]");
  if (!tr) {
    return;
  }
  const next = event.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
  if (!next) {
    return;
  }
  const action = event.target.dataset.action;
  const target = (action && next.querySelector(`[data-action="${action}"]`)) || next.querySelector("button, a");
  if (target) {
    event.preventDefault();
    target.focus();
  }
}

function init() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const me = await login($("username").value, $("password").value);
      $("password").value = "";
      if (!canRead(me)) {
        const home = homePage(me);
        if (home) {
          // QA staff and ML engineers have pages of their own: take them there.
          window.location.href = home;
          return;
        }
        $("login-error").textContent = `The worklist is for radiologists; your role is ${me.role}.`;
        await logout();
        return;
      }
      start();
      $("main").focus();
    } catch (error) {
      $("login-error").textContent = error instanceof ApiError ? error.message : String(error);
    }
  });
  $("logout").addEventListener("click", async () => {
    stop();
    await logout();
    renderNav(null);
    show("login");
    $("username").focus();
  });
  const filters = $("filters");
  filters.addEventListener("submit", (event) => event.preventDefault());
  filters.addEventListener("input", () => {
    state.offset = 0;
    refreshSoon();
  });
  filters.addEventListener("reset", () => {
    state.offset = 0;
    setTimeout(refresh, 0);
  });
  $("mine").addEventListener("click", () => {
    filters.elements.reader.value = session().username;
    state.offset = 0;
    refresh();
  });
  $("previous").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    refresh();
  });
  $("next").addEventListener("click", () => {
    state.offset += PAGE;
    refresh();
  });
  const table = $("worklist");
  table.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) {
      act(button);
    }
  });
  table.addEventListener("keydown", moveFocus);
  const me = session();
  if (canRead(me)) {
    start();
  } else {
    show("login");
  }
}

init();
