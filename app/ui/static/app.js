// The dashboard's only script. It sends the API key (kept in sessionStorage, see the form in
// the header) as `Authorization: Bearer` on every call, loads the server-rendered fragments into
// the page shells, and follows the SSE streams with fetch: EventSource cannot send headers.
"use strict";

const KEY = "trainyard.key";
const state = { refreshing: new Map() };

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  return headers;
}

function notice(text) {
  const element = document.getElementById("notice");
  element.textContent = text || "";
  element.hidden = !text;
}

class Unauthorized extends Error {}

async function call(url, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = authHeaders(opts.headers);
  const response = await fetch(url, opts);
  if (response.status === 401) {
    document.getElementById("key-form").hidden = false;
    notice(sessionStorage.getItem(KEY) ? "The server refused this API key." : "This server needs an API key.");
    throw new Unauthorized(url);
  }
  return response;
}

async function problem(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error || ""} ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || "")}`;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

// Fill `element` with the fragment at `url` (replace, or append for the next page of a table).
// Concurrent refreshes of one element collapse into one that runs after the current one.
async function load(element, url, append) {
  const response = await call(url || element.dataset.fragment);
  if (!response.ok) {
    notice(await problem(response));
    return null;
  }
  const html = await response.text();
  if (append) element.insertAdjacentHTML("beforeend", html);
  else element.innerHTML = html;
  return response;
}

function refresh(element, task) {
  const running = state.refreshing.get(element);
  if (running) {
    running.again = true;
    return;
  }
  const entry = { again: false };
  state.refreshing.set(element, entry);
  (async () => {
    do {
      entry.again = false;
      try {
        await task();
      } catch (error) {
        if (!(error instanceof Unauthorized)) console.warn(error);
      }
    } while (entry.again);
    state.refreshing.delete(element);
  })();
}

// Server-Sent Events over fetch: calls onEvent(kind, data) per event until it returns false or
// the server ends the stream; reconnects after a dropped connection with Last-Event-ID.
async function follow(url, onEvent) {
  let last = null;
  for (;;) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (last) headers["Last-Event-ID"] = last;
      const response = await call(url, { headers, cache: "no-store" });
      if (!response.ok || response.status === 204) return;
      document.body.dataset.live = "true"; // following: the page updates itself from here on
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let match;
        // An event ends at a blank line (sse-starlette writes CRLF line ends).
        while ((match = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
          const block = buffer.slice(0, match.index);
          buffer = buffer.slice(match.index + match[0].length);
          const event = { kind: "message", data: [], id: null };
          for (const line of block.split(/\r\n|\r|\n/)) {
            if (!line || line.startsWith(":")) continue; // keep-alive comments
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let text = colon < 0 ? "" : line.slice(colon + 1);
            if (text.startsWith(" ")) text = text.slice(1);
            if (field === "event") event.kind = text;
            else if (field === "data") event.data.push(text);
            else if (field === "id") event.id = text;
          }
          if (event.id !== null) last = event.id;
          if (event.data.length && onEvent(event.kind, JSON.parse(event.data.join("\n"))) === false) return;
          if (event.kind === "end") return;
        }
      }
    } catch (error) {
      if (error instanceof Unauthorized) return;
      console.warn("event stream dropped; reconnecting", error);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function setProgress(bar, label, epoch) {
  if (!bar) return;
  bar.value = epoch;
  if (label) label.textContent = label.id ? String(epoch) : `${epoch}/${bar.max}`;
}

function jobsPage() {
  const tbody = document.querySelector("#jobs tbody");
  const more = document.getElementById("more");
  const filters = document.getElementById("filters");
  let nextCursor = null;
  let pagedOn = false;

  function url(cursor) {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(filters)) if (value) params.set(name, value);
    if (cursor) params.set("cursor", cursor);
    const query = params.toString();
    return tbody.dataset.fragment + (query ? "?" + query : "");
  }

  async function show(cursor) {
    const response = await load(tbody, url(cursor), Boolean(cursor));
    if (!response) return;
    pagedOn = Boolean(cursor);
    nextCursor = response.headers.get("Next-Cursor");
    more.hidden = !nextCursor;
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    show(null).catch(() => {});
  });
  more.addEventListener("click", () => show(nextCursor).catch(() => {}));
  show(null)
    .then(() =>
      follow("/v1/events", (kind, data) => {
        const row = tbody.querySelector(`tr[data-job-id="${CSS.escape(data.job_id)}"]`);
        if (!row) {
          // A job submitted since the table loaded: show it, unless the user has paged on.
          if (kind === "status" && !data.from_status && !pagedOn) refresh(tbody, () => show(null));
          return;
        }
        if (kind === "epoch") setProgress(row.querySelector("progress"), row.querySelector(".epochs"), data.epoch);
        if (kind === "status") {
          const cell = row.querySelector(".status");
          cell.textContent = data.to_status;
          cell.className = `status status-${data.to_status}`;
        }
      }),
    )
    .catch(() => {});
}

function jobPage(jobId) {
  const section = document.getElementById("job");
  const image = document.getElementById("curves");
  const curvesUrl = `/v1/jobs/${encodeURIComponent(jobId)}/curves.svg`;

  const redraw = () =>
    refresh(image, async () => {
      const response = await call(curvesUrl);
      if (!response.ok) return;
      const old = image.src;
      image.src = URL.createObjectURL(await response.blob());
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    });
  const reload = () => refresh(section, () => load(section));

  load(section)
    .then(() => {
      redraw();
      return follow(`/v1/jobs/${encodeURIComponent(jobId)}/events`, (kind, data) => {
        if (kind === "epoch") {
          setProgress(document.getElementById("job-progress"), document.getElementById("job-epoch"), data.epoch);
          redraw(); // a new point on the curves
        }
        reload(); // the metrics table, status history, error and model version
      });
    })
    .then(() => {
      reload();
      redraw();
    })
    .catch(() => {});
}

function modelsPage() {
  const section = document.getElementById("models");
  section.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.move-label");
    if (!form) return;
    event.preventDefault();
    const name = form.closest("[data-model]").dataset.model;
    const label = form.elements.label.value;
    const version = Number(form.elements.version.value);
    try {
      const response = await call(`/v1/models/${encodeURIComponent(name)}/labels/${encodeURIComponent(label)}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ version }),
      });
      if (!response.ok) {
        notice(await problem(response));
        return;
      }
      notice("");
      await load(section);
    } catch (error) {
      if (!(error instanceof Unauthorized)) notice(String(error));
    }
  });
  load(section).catch(() => {});
}

function keyForm() {
  const form = document.getElementById("key-form");
  const forget = document.getElementById("key-forget");
  forget.hidden = !sessionStorage.getItem(KEY);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("key-input").value.trim());
    location.reload();
  });
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  keyForm();
  const page = document.body.dataset.page;
  if (page === "jobs") jobsPage();
  else if (page === "job") jobPage(document.body.dataset.jobId);
  else if (page === "models") modelsPage();
  else if (page === "dataset") load(document.getElementById("dataset")).catch(() => {});
});
