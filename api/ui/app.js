// ragline chat page: a client of the public /v1 API, no build step, no dependencies.
import { ApiError, Client } from "./api.js";
import {
  append, bestMatch, clear, formatBytes, formatDate, h, icon, inline, sentences,
} from "./dom.js";

const $ = (id) => document.getElementById(id);
const KEYS = {
  apiKey: "ragline.apiKey", // sessionStorage: this tab only
  collection: "ragline.collection",
  settings: "ragline.settings",
  theme: "ragline.theme",
};
const MAX_RETRIES = 5; // on 429, each after the server's Retry-After
const JOB_POLL_MS = 700;
const TRASH = "M4 7h16M10 11v6M14 11v6M6 7l1 12a2 2 0 0 0 2 2h6a2 2 0 0 0 2-2l1-12M9 7V4h6v3";
const CITE = /\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]/g;

function load(storage, key, fallback) {
  try {
    const value = storage.getItem(key);
    return value === null ? fallback : JSON.parse(value);
  } catch {
    return fallback;
  }
}

function save(storage, key, value) {
  try {
    if (value === null || value === undefined || value === "") storage.removeItem(key);
    else storage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the setting lasts for this page only
  }
}

const state = {
  apiKey: load(sessionStorage, KEYS.apiKey, ""),
  collection: load(localStorage, KEYS.collection, ""),
  settings: { topK: null, rerank: "", maxTokens: null, ...load(localStorage, KEYS.settings, {}) },
  collections: [], // names the server lists
  pending: new Set(), // created here, on the server with their first upload
  history: [], // {role, content} sent with each question
  controller: null, // the answer streaming now
  turnsShown: 0,
  refused: false, // the server refused the API key
};

const client = new Client(() => state.apiKey);
const ui = {
  collection: $("collection"),
  health: $("health"),
  banner: $("banner"),
  log: $("log"),
  welcome: $("welcome"),
  composer: $("composer"),
  question: $("question"),
  send: $("send"),
  stop: $("stop"),
  sidebar: $("sidebar"),
  docsToggle: $("docs-toggle"),
  dropzone: $("dropzone"),
  fileInput: $("file-input"),
  jobs: $("jobs"),
  documents: $("documents"),
  docsEmpty: $("docs-empty"),
  docCount: $("doc-count"),
  sourceDialog: $("source-dialog"),
  settingsDialog: $("settings-dialog"),
  settingsForm: $("settings-form"),
  themeToggle: $("theme-toggle"),
};

// -- messages and errors ---------------------------------------------------------------

function describeError(err) {
  if (!(err instanceof ApiError)) return `Unexpected error: ${err?.message || err}`;
  if (err.status === 0) return `Could not reach the server: ${err.message}.`;
  if (err.isAuth) {
    const which = state.apiKey ? "The API key was refused" : "This server needs an API key";
    return `${which}: enter a valid key in Settings. (${err.message})`;
  }
  if (err.code === "context_length_exceeded") {
    return `${err.message} — start a new chat or ask a shorter question.`;
  }
  if (err.status === 429) return `The server is busy: ${err.message}.`;
  const where = err.status === 200 ? "during the answer" : `HTTP ${err.status}`;
  return `${err.message} (${where}${err.code ? `, ${err.code}` : ""})`;
}

function showBanner(message, { action = null } = {}) {
  clear(ui.banner);
  append(ui.banner, [h("span", {}, message)]);
  if (action) {
    append(ui.banner, [h("button", { type: "button", onclick: action.run }, action.label)]);
  }
  ui.banner.hidden = false;
}

function hideBanner() {
  ui.banner.hidden = true;
  clear(ui.banner);
}

function reportError(err) {
  if (err instanceof ApiError && err.isAuth) {
    showBanner(describeError(err), { action: { label: "Enter API key", run: openSettings } });
  } else {
    showBanner(describeError(err));
  }
}

// -- health ----------------------------------------------------------------------------

async function refreshHealth() {
  const text = ui.health.querySelector(".health-text");
  try {
    const health = await client.health();
    const ok = health.engine?.ok;
    ui.health.dataset.state = ok ? health.status : "down";
    const model = String(health.engine?.model || "").replace(/^builtin:/, "");
    text.textContent = ok ? `${health.status === "ok" ? "ready" : "degraded"} · ${model}` : "engine down";
  } catch {
    ui.health.dataset.state = "down";
    text.textContent = "server unreachable";
  }
}

// -- collections and documents ---------------------------------------------------------

async function loadCollections() {
  let listed = null;
  state.refused = false;
  try {
    listed = (await client.collections()).data;
    hideBanner();
  } catch (err) {
    state.refused = err instanceof ApiError && err.isAuth;
    reportError(err);
  }
  if (listed) {
    state.collections = listed;
    for (const c of listed) state.pending.delete(c.name);
  }
  renderPicker();
  await loadDocuments();
}

function renderPicker() {
  const names = state.collections.map((c) => c.name);
  const all = [...names, ...[...state.pending].filter((n) => !names.includes(n))];
  if (!all.includes(state.collection)) state.collection = all[0] || "";
  clear(ui.collection);
  if (!all.length) {
    append(ui.collection, [h("option", { value: "" }, "no collections")]);
  }
  for (const c of state.collections) {
    const docs = `${c.documents} doc${c.documents === 1 ? "" : "s"}`;
    append(ui.collection, [h("option", { value: c.name }, `${c.name} · ${docs}`)]);
  }
  for (const name of state.pending) {
    if (!names.includes(name)) append(ui.collection, [h("option", { value: name }, `${name} · new`)]);
  }
  ui.collection.value = state.collection;
  ui.collection.disabled = !all.length;
  save(localStorage, KEYS.collection, state.collection);
}

let documentsRequest = 0;

async function loadDocuments() {
  const name = state.collection;
  const request = ++documentsRequest;
  if (ui.documents.dataset.collection !== name) {
    // Another collection's rows must not stay on screen while this one loads.
    clear(ui.documents);
    ui.docCount.textContent = "";
    ui.documents.dataset.collection = name;
  }
  if (!name) {
    clear(ui.documents);
    ui.docCount.textContent = "";
    ui.docsEmpty.hidden = false;
    ui.docsEmpty.textContent = state.refused
      ? "Enter an API key in Settings to see the documents."
      : "No collections yet: create one below, then upload files.";
    return;
  }
  if (state.pending.has(name)) {
    clear(ui.documents);
    ui.docCount.textContent = "";
    ui.docsEmpty.hidden = false;
    ui.docsEmpty.textContent = `“${name}” is new: upload files to create it.`;
    return;
  }
  let docs;
  try {
    docs = (await client.documents(name)).data;
  } catch (err) {
    if (!(err instanceof ApiError && err.isAuth)) reportError(err);
    return;
  }
  // A newer load (another job finished, a delete, a switch) supersedes this one.
  if (request !== documentsRequest) return;
  docs.sort((a, b) => a.name.localeCompare(b.name));
  ui.docCount.textContent = `${docs.length} in ${name}`;
  ui.docsEmpty.hidden = docs.length > 0;
  ui.docsEmpty.textContent = "No documents yet.";
  // One swap, so the list is never seen empty or doubled while the request is in flight.
  ui.documents.replaceChildren(...docs.map((doc) => documentRow(name, doc)));
}

function documentRow(collection, doc) {
  const ext = (doc.file_type || doc.name.split(".").pop() || "").slice(0, 4);
  const del = h("button", { type: "button", class: "ghost", title: "Delete" });
  let armed = null;
  const disarm = () => {
    clearTimeout(armed);
    armed = null;
    del.classList.remove("confirm");
    del.replaceChildren(icon(TRASH));
    del.setAttribute("aria-label", `Delete ${doc.name}`);
  };
  disarm();
  del.addEventListener("click", async () => {
    if (!armed) {
      // Two steps instead of a blocking confirm(): the second click deletes.
      del.classList.add("confirm");
      del.textContent = "Confirm";
      del.setAttribute("aria-label", `Confirm: delete ${doc.name}`);
      armed = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    del.disabled = true;
    try {
      await client.deleteDocument(collection, String(doc.id));
      await loadCollections();
    } catch (err) {
      del.disabled = false;
      reportError(err);
    }
  });
  del.addEventListener("blur", () => armed && setTimeout(disarm, 300));
  const meta = `${doc.chunks} chunk${doc.chunks === 1 ? "" : "s"} · ${formatBytes(doc.size_bytes)} · ${formatDate(doc.ingested_at)}`;
  return h(
    "li",
    { class: "document", dataset: { name: doc.name } },
    h("span", { class: "doc-icon", "aria-hidden": "true" }, ext),
    h(
      "div",
      { class: "doc-body" },
      h("div", { class: "doc-name", title: doc.name }, doc.name),
      h("div", { class: "doc-meta" }, meta),
    ),
    del,
  );
}

// -- uploads and jobs ------------------------------------------------------------------

async function upload(files) {
  files = [...files];
  if (!files.length) return;
  const name = state.collection;
  if (!name) {
    showBanner("Pick a collection, or create one under Documents, before uploading.");
    return;
  }
  const label = files.length === 1 ? files[0].name : `${files.length} files`;
  const card = jobCard(label, name);
  ui.jobs.prepend(card.el);
  card.update({ status: "uploading", files_total: files.length, files_done: 0 });
  try {
    const job = await client.upload(name, files);
    card.update(job);
    await pollJob(job.id, card);
  } catch (err) {
    card.fail(describeError(err));
  }
}

function jobCard(label, collection) {
  const status = h("span", { class: "job-status" });
  const bar = h("progress", { max: "1", value: "0", "aria-label": `Progress of ${label}` });
  const errors = h("ul", { class: "job-errors", hidden: true });
  const el = h(
    "li",
    { class: "job" },
    h("div", { class: "job-head" }, h("span", { class: "job-title", title: label }, label), status),
    bar,
    errors,
  );
  const words = { uploading: "uploading…", queued: "queued", running: "ingesting" };
  return {
    el,
    update(job) {
      el.dataset.status = job.status;
      const total = Math.max(job.files_total || 0, 1);
      bar.max = total;
      bar.value = job.status === "succeeded" ? total : job.files_done || 0;
      if (job.status === "succeeded" || job.status === "failed") {
        const parts = Object.entries(job.outcomes || {}).map(([k, n]) => `${n} ${k}`);
        status.textContent = job.status === "failed"
          ? `failed${job.message ? `: ${job.message}` : ""}`
          : `done${parts.length ? ` · ${parts.join(", ")}` : ""}`;
      } else {
        const progress = job.files_total ? ` ${job.files_done}/${job.files_total}` : "";
        status.textContent = `${words[job.status] || job.status}${job.status === "running" ? progress : ""}`;
      }
      clear(errors);
      for (const e of job.errors || []) append(errors, [h("li", {}, `${e.file}: ${e.error}`)]);
      errors.hidden = !(job.errors || []).length;
      el.setAttribute("aria-label", `${label} into ${collection}: ${status.textContent}`);
    },
    fail(message) {
      el.dataset.status = "failed";
      status.textContent = "failed";
      clear(errors);
      append(errors, [h("li", {}, message)]);
      errors.hidden = false;
    },
  };
}

async function pollJob(id, card) {
  while (true) {
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    let job;
    try {
      job = await client.job(id);
    } catch (err) {
      card.fail(describeError(err));
      return;
    }
    card.update(job);
    if (job.status === "succeeded" || job.status === "failed") {
      await loadCollections();
      return;
    }
  }
}

// -- chat ------------------------------------------------------------------------------

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.question.setAttribute("aria-busy", busy ? "true" : "false");
}

function scrollToEnd() {
  const log = ui.log;
  if (log.scrollHeight - log.scrollTop - log.clientHeight < 160) log.scrollTop = log.scrollHeight;
}

function addTurn(el) {
  ui.welcome.hidden = true;
  ui.log.append(el);
  ui.log.scrollTop = ui.log.scrollHeight;
}

/** The answer with each [n] as a chip (a button once the sources are known). */
function renderAnswer(turn) {
  const { answerEl, text, sources } = turn;
  const byNumber = new Map((sources || []).map((s) => [s.number, s]));
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(CITE)) {
    const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
    if (sources && !numbers.every((n) => byNumber.has(n))) continue; // not a citation
    nodes.push(text.slice(last, match.index));
    for (const n of numbers) {
      const source = byNumber.get(n);
      nodes.push(
        source
          ? h(
            "button",
            {
              type: "button",
              class: "chip",
              "aria-label": `Source ${n}: ${source.source}`,
              onclick: (event) => openSource(turn, source, event.currentTarget, match.index),
            },
            String(n),
          )
          : h("span", { class: "chip chip-static" }, String(n)),
      );
    }
    last = match.index + match[0].length;
  }
  nodes.push(text.slice(last));
  const flat = nodes.flatMap((n) => (typeof n === "string" ? inline(n) : [n]));
  answerEl.replaceChildren(...flat.map((n) => (typeof n === "string" ? document.createTextNode(n) : n)));
}

function kindOf(source) {
  return source.cited ? "cited" : source.attributed ? "attributed" : "retrieved";
}

const GROUPS = [
  ["cited", "Cited in the answer"],
  ["attributed", "Matched to the answer (not cited)"],
  ["retrieved", "Also retrieved"],
];

function renderSources(turn) {
  const sources = turn.sources || [];
  clear(turn.sourcesEl);
  if (!sources.length) {
    turn.sourcesEl.hidden = true;
    return;
  }
  turn.sourcesEl.hidden = false;
  append(turn.sourcesEl, [h("div", { class: "sources-title", id: `${turn.id}-sources` }, `Sources (${sources.length})`)]);
  const onlyRetrieved = sources.every((s) => kindOf(s) === "retrieved");
  for (const [kind, groupLabel] of GROUPS) {
    const group = sources.filter((s) => kindOf(s) === kind);
    if (!group.length) continue;
    const label = onlyRetrieved ? "Retrieved for this question" : groupLabel;
    const labelId = `${turn.id}-${kind}`;
    const list = h("ul", { class: "source-list", "aria-labelledby": labelId });
    for (const source of group) {
      const where = source.page ? `p. ${source.page}` : "";
      const button = h(
        "button",
        {
          type: "button",
          class: "source-item",
          dataset: { kind, number: String(source.number) },
          "aria-label": `Source ${source.number}: ${source.source}${where ? `, page ${source.page}` : ""}, ${kind}`,
          title: source.headings?.length ? source.headings.join(" › ") : source.source,
        },
        h("span", { class: "num" }, String(source.number)),
        h("span", { class: "name" }, source.source),
        where ? h("span", { class: "where" }, where) : null,
      );
      button.addEventListener("click", () => openSource(turn, source, button, null));
      append(list, [h("li", {}, button)]);
    }
    append(turn.sourcesEl, [
      h(
        "div",
        { class: "source-group", dataset: { kind } },
        h("div", { class: "source-group-label", id: labelId }, label),
        list,
      ),
    ]);
  }
}

function newTurn(question, collection) {
  const id = `turn-${++state.turnsShown}`;
  addTurn(
    h(
      "div",
      { class: "turn turn-user" },
      h("div", { class: "bubble-user" }, question),
    ),
  );
  const answerEl = h("div", {
    class: "answer",
    id: `${id}-answer`,
    "aria-live": "polite",
    "aria-busy": "true",
    "aria-label": "Answer",
  });
  const statusEl = h("div", { class: "answer-status", role: "status" }, `Searching ${collection}…`);
  const sourcesEl = h("div", { class: "sources", hidden: true });
  const el = h(
    "article",
    { class: "turn turn-assistant", "aria-label": `Answer to: ${question}` },
    h("div", { class: "answer-card" }, answerEl, statusEl, sourcesEl),
  );
  addTurn(el);
  return { id, el, answerEl, statusEl, sourcesEl, text: "", sources: null, question };
}

function setStatus(turn, text, kind = "") {
  turn.statusEl.textContent = text;
  turn.statusEl.className = `answer-status${kind ? ` ${kind}` : ""}`;
}

function waitFor(seconds, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new DOMException("stopped", "AbortError"));
      },
      { once: true },
    );
  });
}

async function ask(question) {
  const collection = state.collection;
  if (!collection) {
    showBanner("Pick a collection first.");
    return;
  }
  if (state.pending.has(collection)) {
    showBanner(`“${collection}” has no documents yet: upload some first.`);
    return;
  }
  const turn = newTurn(question, collection);
  const messages = [...state.history, { role: "user", content: question }];
  const body = { model: collection, collection, messages };
  const { topK, rerank, maxTokens } = state.settings;
  if (topK) body.top_k = topK;
  if (rerank) body.rerank = rerank === "on";
  if (maxTokens) body.max_tokens = maxTokens;

  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  const started = performance.now();
  let firstToken = null;
  let frame = 0;
  const onDelta = (piece) => {
    if (firstToken === null) {
      firstToken = performance.now();
      setStatus(turn, "Writing…");
    }
    turn.text += piece;
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        renderAnswer(turn);
        scrollToEnd();
      });
    }
  };
  try {
    let result;
    for (let attempt = 0; ; attempt++) {
      try {
        result = await client.chat(body, { signal: controller.signal, onDelta });
        break;
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 429 || attempt >= MAX_RETRIES) throw err;
        const wait = err.retryAfter ?? 2;
        for (let left = wait; left > 0; left--) {
          setStatus(turn, `Server busy — retrying in ${left} s (attempt ${attempt + 2} of ${MAX_RETRIES + 1})…`, "stopped");
          await waitFor(1, controller.signal);
        }
        setStatus(turn, `Searching ${collection}…`);
      }
    }
    cancelAnimationFrame(frame);
    frame = 0;
    turn.sources = result.sources;
    renderAnswer(turn);
    renderSources(turn);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const cut = result.finishReason === "length" ? " (length limit)" : "";
    const tokens = result.usage ? `${result.usage.completion_tokens} tokens${cut} · ` : "";
    setStatus(turn, `${tokens}${seconds} s · ${collection}`);
    if (!turn.text.trim()) setStatus(turn, "The model returned an empty answer.", "error");
    state.history.push({ role: "user", content: question }, { role: "assistant", content: turn.text });
  } catch (err) {
    cancelAnimationFrame(frame);
    renderAnswer(turn);
    if (err?.name === "AbortError") {
      setStatus(turn, turn.text ? "Stopped." : "Stopped before the answer began.", "stopped");
      if (turn.text.trim()) {
        state.history.push({ role: "user", content: question }, { role: "assistant", content: turn.text });
      }
    } else {
      setStatus(turn, describeError(err), "error");
      if (err instanceof ApiError && err.isAuth) reportError(err);
    }
  } finally {
    turn.answerEl.setAttribute("aria-busy", "false");
    if (state.controller === controller) state.controller = null;
    setBusy(false);
    scrollToEnd();
  }
}

function newChat() {
  state.controller?.abort();
  state.history = [];
  for (const el of [...ui.log.querySelectorAll(".turn")]) el.remove();
  ui.welcome.hidden = false;
  ui.question.focus();
}

// -- source preview --------------------------------------------------------------------

/** The answer sentence holding the citation at `index`, markers removed. */
function citingSentence(text, index) {
  const before = text.slice(0, index).replace(/\s+$/, "");
  const body = before.replace(/[.!?]+$/, "");
  const start = Math.max(body.lastIndexOf(". "), body.lastIndexOf("! "), body.lastIndexOf("? "), body.lastIndexOf("\n"));
  return before.slice(start + 1).replace(CITE, "").trim();
}

function openSource(turn, source, trigger, citeIndex) {
  const dialog = ui.sourceDialog;
  const kind = kindOf(source);
  $("source-title").textContent = `[${source.number}] ${source.source}`;

  const meta = clear($("source-meta"));
  const explain = {
    cited: "the answer cites it",
    attributed: "sentences of the answer match it",
    retrieved: "retrieved for the question, not used in the answer",
  }[kind];
  const row = (term, ...value) => append(meta, [h("dt", {}, term), h("dd", {}, ...value)]);
  row("Status", h("span", { class: "badge", dataset: { kind } }, kind), " ", h("span", { class: "muted small" }, explain));
  row("File", source.source);
  if (source.page) row("Page", String(source.page));
  if (source.headings?.length) row("Section", source.headings.join(" › "));
  row("Score", Number(source.score).toFixed(3));
  row("Chunk", String(source.chunk_id));

  // Highlight the passage sentence closest to the sentence that cites it (for a chip),
  // or to any sentence of the answer (for a source picked from the list).
  let queries;
  if (citeIndex !== null) queries = [citingSentence(turn.text, citeIndex)];
  else {
    queries = [];
    for (const match of turn.text.matchAll(CITE)) {
      const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
      if (numbers.includes(source.number)) queries.push(citingSentence(turn.text, match.index));
    }
    if (!queries.length) queries = sentences(turn.text.replace(CITE, "")).map((s) => s.text);
  }
  const text = source.text || "";
  const match = bestMatch(text, queries.filter(Boolean), kind === "retrieved" ? 3 : 1);
  const passage = clear($("source-text"));
  if (match) {
    append(passage, [
      text.slice(0, match.start),
      h("mark", {}, text.slice(match.start, match.end)),
      text.slice(match.end),
    ]);
  } else {
    passage.textContent = text || "(no text)";
  }
  $("source-quote-wrap").hidden = !match;
  $("source-quote").textContent = match ? `“${match.query}”` : "";

  dialog.returnTo = trigger;
  dialog.showModal();
  dialog.querySelector("[data-close]").focus();
}

function bindDialogs() {
  for (const dialog of [ui.sourceDialog, ui.settingsDialog]) {
    for (const button of dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => dialog.close());
    }
    // A click on the backdrop (outside the box) closes it too.
    dialog.addEventListener("click", (event) => {
      if (event.target !== dialog) return;
      const r = dialog.getBoundingClientRect();
      const inside = event.clientX >= r.left && event.clientX <= r.right
        && event.clientY >= r.top && event.clientY <= r.bottom;
      if (!inside) dialog.close();
    });
    dialog.addEventListener("close", () => {
      const target = dialog.returnTo;
      dialog.returnTo = null;
      if (target && target.isConnected) target.focus();
    });
  }
}

// -- settings --------------------------------------------------------------------------

function openSettings() {
  const form = ui.settingsForm;
  form.apiKey.value = state.apiKey;
  form.topK.value = state.settings.topK ?? "";
  form.maxTokens.value = state.settings.maxTokens ?? "";
  form.rerank.value = state.settings.rerank || "";
  ui.settingsDialog.returnTo = document.activeElement;
  ui.settingsDialog.showModal();
  form.apiKey.focus();
}

function saveSettings() {
  const form = ui.settingsForm;
  const int = (value, lo, hi) => {
    const n = Number.parseInt(value, 10);
    return Number.isFinite(n) ? Math.min(Math.max(n, lo), hi) : null;
  };
  state.apiKey = form.apiKey.value.trim();
  state.settings = {
    topK: int(form.topK.value, 1, 50),
    maxTokens: int(form.maxTokens.value, 1, 4096),
    rerank: form.rerank.value,
  };
  save(sessionStorage, KEYS.apiKey, state.apiKey);
  save(localStorage, KEYS.settings, state.settings);
  hideBanner();
  loadCollections();
}

// -- theme -----------------------------------------------------------------------------

const dark = window.matchMedia("(prefers-color-scheme: dark)");

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const current = theme || (dark.matches ? "dark" : "light");
  const next = current === "dark" ? "light" : "dark";
  ui.themeToggle.setAttribute("aria-label", `Switch to ${next} theme`);
  ui.themeToggle.title = `Switch to ${next} theme`;
  const path = ui.themeToggle.querySelector("path");
  path.setAttribute(
    "d",
    current === "dark"
      ? "M12 7a5 5 0 1 0 0 10 5 5 0 0 0 0-10zm0-5v2m0 16v2M4.2 4.2l1.4 1.4m12.8 12.8 1.4 1.4M2 12h2m16 0h2M4.2 19.8l1.4-1.4M18.4 5.6l1.4-1.4"
      : "M12 3a9 9 0 1 0 9 9 7 7 0 0 1-9-9z",
  );
  path.setAttribute("stroke", current === "dark" ? "currentColor" : "none");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("fill", current === "dark" ? "none" : "currentColor");
}

// -- wiring ----------------------------------------------------------------------------

function bind() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = ui.question.value.trim();
    if (!question || state.controller) return;
    ui.question.value = "";
    autosize();
    ask(question);
  });
  ui.question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  const autosize = () => {
    ui.question.style.height = "auto";
    ui.question.style.height = `${Math.min(ui.question.scrollHeight, 200)}px`;
  };
  ui.question.addEventListener("input", autosize);
  ui.stop.addEventListener("click", () => {
    state.controller?.abort();
    ui.question.focus();
  });

  ui.collection.addEventListener("change", () => {
    state.collection = ui.collection.value;
    save(localStorage, KEYS.collection, state.collection);
    loadDocuments();
  });
  $("new-chat").addEventListener("click", newChat);
  $("open-settings").addEventListener("click", openSettings);
  ui.settingsForm.addEventListener("submit", (event) => {
    if (event.submitter?.value === "save" || !event.submitter) saveSettings();
  });

  ui.themeToggle.addEventListener("click", () => {
    const current = document.documentElement.dataset.theme || (dark.matches ? "dark" : "light");
    const next = current === "dark" ? "light" : "dark";
    save(localStorage, KEYS.theme, next);
    applyTheme(next);
  });
  dark.addEventListener("change", () => applyTheme(load(localStorage, KEYS.theme, "")));

  ui.docsToggle.addEventListener("click", () => toggleSidebar());
  ui.sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && ui.sidebar.classList.contains("open")) {
      toggleSidebar(false);
      ui.docsToggle.focus();
    }
  });

  $("choose-files").addEventListener("click", () => ui.fileInput.click());
  ui.fileInput.addEventListener("change", () => {
    upload(ui.fileInput.files);
    ui.fileInput.value = "";
  });
  let depth = 0;
  ui.dropzone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    ui.dropzone.classList.add("dragging");
  });
  ui.dropzone.addEventListener("dragover", (event) => event.preventDefault());
  ui.dropzone.addEventListener("dragleave", () => {
    depth = Math.max(depth - 1, 0);
    if (!depth) ui.dropzone.classList.remove("dragging");
  });
  ui.dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    ui.dropzone.classList.remove("dragging");
    upload(event.dataTransfer?.files || []);
  });
  // A file dropped anywhere else must not navigate away from the conversation.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  $("new-collection-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("new-collection-name");
    const name = input.value.trim();
    if (!name) return;
    if (!state.collections.some((c) => c.name === name)) state.pending.add(name);
    state.collection = name;
    input.value = "";
    renderPicker();
    loadDocuments();
    $("choose-files").focus();
  });

  bindDialogs();
}

function toggleSidebar(open = !ui.sidebar.classList.contains("open")) {
  ui.sidebar.classList.toggle("open", open);
  ui.docsToggle.setAttribute("aria-expanded", String(open));
}

applyTheme(load(localStorage, KEYS.theme, ""));
bind();
refreshHealth();
setInterval(refreshHealth, 15000);
loadCollections();
