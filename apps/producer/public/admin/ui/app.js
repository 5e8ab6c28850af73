// The operator page's only script, served as a static file (no build step,
// no framework). It keeps the admin token in sessionStorage, fetches the
// page's sections as HTML fragments rendered by the producer, and sends
// actions to the JSON admin API after a confirmation. It never puts
// untrusted text into HTML: fragments are escaped by the server, and this
// script writes messages with textContent.

const TOKEN_KEY = "path-stats.admin-token";
const LIVE_INTERVAL_MS = 2000;
/** A day refreshed this many times without any change stops refreshing. */
const STILL_LIMIT = 5;

const $ = (selector) => document.querySelector(selector);
// table: the archived table shown (null: the first one, the server's choice).
const state = { table: null, day: null, liveTimer: null, stillCount: 0, lastDayHtml: "", results: {} };

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

/** Calls the admin API with the bearer token; a refusal becomes an Error carrying the API's own message. */
async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const json = await response.json();
      if (json?.error) detail = `${response.status} ${json.error.code}: ${json.error.message}`;
    } catch {}
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

/** Loads a section's fragment; the last action's result stays shown in it across refreshes. */
async function loadFragment(section, path) {
  const response = await api("GET", path);
  const html = await response.text();
  $(section).innerHTML = html;
  const result = state.results[section];
  const box = $(`${section} output.result`);
  if (result && box) {
    box.textContent = result.text;
    box.classList.toggle("error-text", result.failed);
  }
  return html;
}

function askToken(message) {
  stopLive();
  for (const id of ["#health", "#overview", "#day", "#dead-letters"]) $(id).innerHTML = "";
  $("#token-form").hidden = false;
  $("#forget-token").hidden = true;
  showError(message ?? "");
  $("#token").focus();
}

function handle(error) {
  if (error.status === 401) sessionStorage.removeItem(TOKEN_KEY);
  if (error.status === 401 || error.status === 503) return askToken(error.message);
  showError(error.message);
}

async function refreshAll() {
  try {
    showError("");
    await Promise.all([
      loadFragment("#health", "/admin/ui/fragments/health"),
      loadDeadLetters(),
      state.day ? loadDay(state.day) : null,
    ]);
    // After the day, so its tile is never older than the day shown below it.
    await loadFragment(
      "#overview",
      `/admin/ui/fragments/overview${state.table ? `?table=${encodeURIComponent(state.table)}` : ""}`,
    );
  } catch (error) {
    handle(error);
  }
}

function deadLettersQuery() {
  const form = document.querySelector("#dead-letters form.filters");
  const params = new URLSearchParams();
  if (form) {
    for (const [key, value] of new FormData(form)) if (value) params.set(key, String(value));
  }
  return params.toString();
}

async function loadDeadLetters() {
  const query = deadLettersQuery();
  await loadFragment("#dead-letters", `/admin/ui/fragments/dead-letters${query ? `?${query}` : ""}`);
}

function stopLive() {
  clearTimeout(state.liveTimer);
  state.liveTimer = null;
}

/** Loads one day; while work is in flight, again every 2 s until nothing moves. */
async function loadDay(date) {
  stopLive();
  if (state.day !== date) {
    state.stillCount = 0;
    state.lastDayHtml = "";
    state.results["#day"] = undefined;
  }
  state.day = date;
  const table = state.table ? `table=${encodeURIComponent(state.table)}&` : "";
  const html = await loadFragment("#day", `/admin/ui/fragments/day?${table}date=${encodeURIComponent(date)}`);
  state.stillCount = html === state.lastDayHtml ? state.stillCount + 1 : 0;
  state.lastDayHtml = html;
  const live = document.querySelector("#day [data-live]");
  if (live && state.stillCount < STILL_LIMIT) {
    state.liveTimer = setTimeout(() => {
      loadDay(date)
        .then(() => {
          if (!document.querySelector("#day [data-live]")) return refreshAll();
        })
        .catch(handle);
    }, LIVE_INTERVAL_MS);
  } else if (live) {
    const note = document.querySelector("#day .live");
    if (note) note.textContent = " (no change for a while: refresh paused; click the day to resume)";
  }
}

/** Shows the confirmation dialog; resolves true when the operator confirms. */
function confirmAction(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("#confirm-ok").focus();
  });
}

function resultBox(button) {
  return button.closest(".actions")?.querySelector("output.result");
}

async function runAction(button, method, path, body, confirmText, refresh) {
  if (!(await confirmAction(confirmText))) return;
  const section = `#${refresh}`;
  const box = resultBox(button);
  if (box) box.textContent = "working …";
  button.disabled = true;
  try {
    const response = await api(method, path, body);
    state.results[section] = { text: `Done (${response.status}): ${describe(await response.json())}`, failed: false };
  } catch (error) {
    if (error.status === 401) return handle(error);
    state.results[section] = { text: `Refused: ${error.message}`, failed: true };
  }
  await refreshAll();
}

/** An action's answer in words: the API's own message, or what a replay did. */
function describe(json) {
  if (json.message) return json.message;
  if (Array.isArray(json.replayed)) {
    const missing = json.missing?.length ? `; not found: ${json.missing.join(", ")}` : "";
    return `replayed ${json.replayed.length} letter(s)${missing}; ${json.pendingLeft ?? 0} not replayed left`;
  }
  return JSON.stringify(json);
}

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  const day = target?.closest("button[data-day]");
  if (day) {
    state.table = day.dataset.table ?? state.table;
    loadDay(day.dataset.day)
      .then(() => $("#day").scrollIntoView({ block: "start" }))
      .catch(handle);
    return;
  }
  const action = target?.closest("button.action[data-path]");
  if (action) {
    const body = action.dataset.body ? JSON.parse(action.dataset.body) : undefined;
    runAction(action, action.dataset.method, action.dataset.path, body, action.dataset.confirm, action.dataset.refresh);
    return;
  }
  const replay = target?.closest("button[data-replay=selected]");
  if (replay) {
    const ids = [...document.querySelectorAll("#dead-letters input[name=letter]:checked")].map((i) => Number(i.value));
    const box = resultBox(replay);
    if (ids.length === 0) {
      if (box) box.textContent = "Select the letters to replay first.";
      return;
    }
    runAction(
      replay,
      "POST",
      "/admin/dead-letters/replay",
      { ids },
      `Replay dead letter(s) ${ids.join(", ")}: each is sent again to its queue.`,
      "dead-letters",
    );
  }
});

document.addEventListener("change", (event) => {
  if (!(event.target instanceof Element)) return;
  if (event.target.closest("#dead-letters form.filters")) {
    loadDeadLetters().catch(handle);
  }
  // Another table: its days, and no day of the one before.
  const table = event.target.closest("#overview form.tables select[name=table]");
  if (table) {
    stopLive();
    state.table = table.value;
    state.day = null;
    $("#day").innerHTML = "";
    refreshAll();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    $("#token-form").hidden = true;
    $("#forget-token").hidden = false;
    refreshAll();
  });
  $("#forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.day = null;
    askToken("Token forgotten.");
  });
  if (token()) {
    $("#forget-token").hidden = false;
    refreshAll();
  } else {
    askToken();
  }
});
