// What the pages share: the session token, API calls, the live event stream, formatting.
//
// The token of a web login (POST /api/auth/login) lives in sessionStorage: it is gone when
// the tab closes and is never put in a URL. Every path is relative to the page, so the UI
// works behind a reverse proxy that adds a prefix.

const ROOT = new URL("../", window.location.href);
const SESSION_KEY = "pacs-ai.session";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), ROOT);
}

export function session() {
  const text = window.sessionStorage.getItem(SESSION_KEY);
  return text ? JSON.parse(text) : null;
}

export function canRead(current) {
  return current !== null && (current.role === "radiologist" || current.role === "admin");
}

// QA review and its statistics: roles qa and admin.
export function canReview(current) {
  return current !== null && (current.role === "qa" || current.role === "admin");
}

// Model operations: roles ml_engineer and admin.
export function canOperate(current) {
  return current !== null && (current.role === "ml_engineer" || current.role === "admin");
}

// The agreement statistics: reviewers, and the ML engineers who compare versions on them.
export function canSeeStatistics(current) {
  return canReview(current) || canOperate(current);
}

// The pages, and who may use each: the navigation shows only the links of the user's role.
export const PAGES = [
  { href: "./", file: "index.html", text: "Worklist", allowed: canRead },
  { href: "qa.html", file: "qa.html", text: "QA review", allowed: canReview },
  { href: "stats.html", file: "stats.html", text: "Statistics", allowed: canSeeStatistics },
  { href: "models.html", file: "models.html", text: "Models", allowed: canOperate },
];

// The first page the user may use, for a login on a page that is not theirs.
export function homePage(current) {
  const page = PAGES.find((candidate) => candidate.allowed(current));
  return page ? page.href : null;
}

// Fills <nav id="nav"> with the links the user may follow; the current page is marked.
export function renderNav(current) {
  const nav = document.getElementById("nav");
  if (!nav) {
    return;
  }
  const here = window.location.pathname.split("/").pop() || "index.html";
  const links = PAGES.filter((page) => page.allowed(current)).map((page) =>
    element("li", {}, element("a", { href: page.href, text: page.text, "aria-current": page.file === here ? "page" : null })),
  );
  nav.replaceChildren(element("ul", {}, ...links));
  nav.hidden = current === null || links.length === 0;
}

export async function login(username, password) {
  const response = await fetch(apiUrl("api/auth/login"), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body);
  }
  const current = { token: body.access_token, username: body.username, role: body.role };
  window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(current));
  return current;
}

export async function logout() {
  const current = session();
  window.sessionStorage.removeItem(SESSION_KEY);
  if (current) {
    await fetch(apiUrl("api/auth/logout"), {
      method: "POST",
      headers: { Authorization: `Bearer ${current.token}` },
    }).catch(() => undefined);
  }
}

function authorization() {
  const current = session();
  if (!current) {
    throw new Unauthorized("not logged in");
  }
  return { Authorization: `Bearer ${current.token}` };
}

async function send(path, options = {}) {
  const response = await fetch(apiUrl(path), {
    ...options,
    headers: { ...authorization(), ...(options.headers || {}) },
  });
  if (response.status === 401) {
    window.sessionStorage.removeItem(SESSION_KEY);
    throw new Unauthorized("the session ended");
  }
  return response;
}

export async function getJson(path) {
  const response = await send(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body);
  }
  return body;
}

export async function postJson(path, payload) {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body);
  }
  return body;
}

// Any method, any status: {status, ok, body} (body is the parsed JSON or null). Only a 401
// throws (Unauthorized), so that a page can tell a 409 from a 422 and answer each.
export async function request(path, { method = "GET", payload } = {}) {
  const headers = { Accept: "application/json" };
  if (payload !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  const response = await send(path, {
    method,
    headers,
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  const body = await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, body };
}

// A file that needs the token (e.g. a CSV export): fetched as a blob, saved through a link.
export async function download(path, filename) {
  const response = await send(path, { headers: { Accept: "text/csv, */*" } });
  if (!response.ok) {
    throw new ApiError(response.status, await response.json().catch(() => null));
  }
  const url = URL.createObjectURL(await response.blob());
  const link = element("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// The login, log out and navigation every page but the worklist shares. The page has the
// login-view section (login-form, username, password, login-error), a header with #who
// (#user, #logout) and #nav, and its own content section `view`. `start(me)` runs once
// the user is in; `refused(me)` says why a logged-in user may not use the page.
export function setupPage({ view, allowed, refused, start }) {
  const byId = (id) => document.getElementById(id);
  const show = (which) => {
    byId("login-view").hidden = which !== "login";
    byId(view).hidden = which !== "content";
    byId("who").hidden = which !== "content";
  };
  const begin = (me) => {
    byId("user").textContent = `${me.username} (${me.role})`;
    renderNav(me);
    show("content");
    start(me);
  };
  byId("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    byId("login-error").textContent = "";
    try {
      const me = await login(byId("username").value, byId("password").value);
      byId("password").value = "";
      if (!allowed(me)) {
        byId("login-error").textContent = refused(me);
        await logout();
        return;
      }
      begin(me);
      byId("main").focus();
    } catch (error) {
      byId("login-error").textContent = error instanceof ApiError ? error.message : String(error);
    }
  });
  byId("logout").addEventListener("click", async () => {
    await logout();
    renderNav(null);
    show("login");
    byId("username").focus();
  });
  const me = session();
  if (allowed(me)) {
    begin(me);
  } else {
    show("login");
  }
  return {
    // After a 401: back to the login form, saying why.
    expired() {
      renderNav(null);
      show("login");
      byId("login-error").textContent = "Your session ended; please log in again.";
    },
  };
}

// An interval {value, low, high} as "0.80 (0.49–0.94)"; "–" when there is none.
export function interval(value, digits = 2) {
  if (value === null || value === undefined) {
    return "–";
  }
  if (typeof value === "number") {
    return value.toFixed(digits);
  }
  if (value.value === null || value.value === undefined) {
    return "–";
  }
  const bounds =
    value.low === null || value.low === undefined ? "" : ` (${value.low.toFixed(digits)}–${value.high.toFixed(digits)})`;
  return `${value.value.toFixed(digits)}${bounds}`;
}

export function dateTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

// An image that needs the token: fetched as a blob, shown through an object URL.
export async function imageUrl(path) {
  const response = await send(path, { headers: { Accept: "image/png, image/jpeg" } });
  if (!response.ok) {
    throw new ApiError(response.status, await response.json().catch(() => null));
  }
  return URL.createObjectURL(await response.blob());
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") {
      name = value;
    } else if (field === "data") {
      data.push(value);
    }
  }
  return data.length ? { name, data: JSON.parse(data.join("\n")) } : null;
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header). Calls
// onEvent(name, data) per event and onState("live" | "reconnecting"); reconnects until
// signal aborts. The "ready" event comes first on every (re)connection.
export async function listen(path, { onEvent, onState, signal }) {
  while (!signal.aborted) {
    try {
      const response = await send(path, { headers: { Accept: "text/event-stream" }, signal });
      if (!response.ok) {
        throw new ApiError(response.status, null);
      }
      onState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) {
            onEvent(event.name, event.data);
          }
        }
      }
    } catch (error) {
      if (error instanceof Unauthorized) {
        onState("ended");
        return;
      }
      if (signal.aborted) {
        return;
      }
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

export function personName(value) {
  const [family = "", given = ""] = (value || "").split("^");
  return given ? `${family}, ${given}` : family || "(no name)";
}

export function duration(minutes) {
  const whole = Math.max(0, Math.round(minutes));
  if (whole < 60) {
    return `${whole} min`;
  }
  const hours = Math.floor(whole / 60);
  return whole % 60 ? `${hours} h ${whole % 60} min` : `${hours} h`;
}

export function minutesUntil(iso) {
  return (new Date(iso).getTime() - Date.now()) / 60000;
}

export function slaText(deadline) {
  const left = minutesUntil(deadline);
  return left >= 0 ? `${duration(left)} left` : `overdue ${duration(-left)}`;
}

export function statusText(status) {
  return { unread: "Unread", in_progress: "In progress", read: "Read" }[status] || status;
}

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) {
      continue;
    }
    if (name === "class") {
      node.className = value;
    } else if (name === "text") {
      node.textContent = value;
    } else if (name.startsWith("data-") || name.startsWith("aria-") || name === "role") {
      node.setAttribute(name, value === true ? "" : String(value));
    } else {
      node[name] = value;
    }
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function badge(item) {
  const kind = item.present ? `sev-${item.severity || "none"}` : "negative";
  const title = item.present
    ? `${item.label}: present, probability ${item.probability.toFixed(2)} (${item.model})`
    : `${item.label}: not present, probability ${item.probability.toFixed(2)} (${item.model})`;
  return element("span", { class: `badge ${kind}`, title, text: item.text });
}

export function scoreDetails(score) {
  const parts = element(
    "dl",
    { class: "parts" },
    element("dt", { text: "AI" }),
    element("dd", { text: score.ai.toFixed(2) }),
    element("dt", { text: "Clinical" }),
    element("dd", { text: score.clinical.toFixed(2) }),
    element("dt", { text: "Waiting" }),
    element("dd", { text: score.waiting.toFixed(2) }),
  );
  const reasons = element("ul", { class: "reasons" }, ...score.reasons.map((r) => element("li", { text: r })));
  const summary = element("summary", {
    text: score.total.toFixed(2),
    title: `AI ${score.ai.toFixed(2)} + clinical ${score.clinical.toFixed(2)} + waiting ${score.waiting.toFixed(2)}; ${score.category}`,
  });
  return element("details", { class: "score" }, summary, parts, element("p", { text: `Category: ${score.category}` }), reasons);
}
