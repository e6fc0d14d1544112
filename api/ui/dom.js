// DOM helpers: elements are built from text nodes only, never from HTML strings, so text
// from the server or the user cannot become markup.

/** h("button", {class: "x", onclick: f, "aria-label": "..."}, "text", child, ...) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

/** A stroked 24x24 icon from path data (decorative: hidden from screen readers). */
export function icon(d, size = 16) {
  const svg = document.createElementNS(SVG, "svg");
  for (const [k, v] of Object.entries({
    viewBox: "0 0 24 24", width: size, height: size, fill: "none", stroke: "currentColor",
    "stroke-width": "1.8", "stroke-linecap": "round", "stroke-linejoin": "round",
    "aria-hidden": "true",
  })) svg.setAttribute(k, String(v));
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}

/** **bold** and `code` as elements, everything else as text. */
export function inline(text) {
  const nodes = [];
  let last = 0;
  for (const m of text.matchAll(/\*\*([^*\n]+)\*\*|`([^`\n]+)`/g)) {
    nodes.push(text.slice(last, m.index));
    nodes.push(m[1] !== undefined ? h("strong", {}, m[1]) : h("code", {}, m[2]));
    last = m.index + m[0].length;
  }
  nodes.push(text.slice(last));
  return nodes.filter((n) => n !== "");
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

export function formatDate(seconds) {
  const date = new Date(seconds * 1000);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

// -- sentence matching for the source preview's highlight ----------------------------

const STOP = new Set(
  ("the and for are but not you all any can had her was one our out has his how its may " +
    "new now old see two who did get let put say she too use that with this from they " +
    "will would there their what when which have been were than then them these those " +
    "into also more most such only other some very just about over your each does")
    .split(" "),
);

export function words(text) {
  const found = text.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}'-]{2,}/gu) || [];
  return new Set(found.filter((w) => !STOP.has(w)));
}

function similarity(a, b) {
  if (!a.size || !b.size) return { score: 0, shared: 0 };
  let shared = 0;
  for (const w of a) if (b.has(w)) shared += 1;
  return { score: shared / Math.sqrt(a.size * b.size), shared };
}

/** Sentences of `text` as {start, end, text} (offsets into text). */
export function sentences(text) {
  const out = [];
  const re = /[^.!?\n]+(?:[.!?]+|\n|$)/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    const lead = m[0].length - m[0].trimStart().length;
    const body = m[0].trim();
    if (body) out.push({ start: m.index + lead, end: m.index + lead + body.length, text: body });
  }
  return out;
}

/**
 * The passage sentence closest to any of `queries` (answer sentences), or null when
 * nothing is close: {start, end, query}.
 */
export function bestMatch(passage, queries, minShared = 2) {
  let best = null;
  const querySets = queries.map((q) => ({ q, set: words(q) }));
  for (const s of sentences(passage)) {
    const set = words(s.text);
    for (const { q, set: qs } of querySets) {
      const { score, shared } = similarity(set, qs);
      if (shared >= minShared && (!best || score > best.score)) {
        best = { start: s.start, end: s.end, query: q, score };
      }
    }
  }
  return best;
}
