// A small client of ragline's public HTTP API (/v1/...): JSON calls, streamed chat over
// SSE read with fetch + ReadableStream (EventSource cannot POST), OpenAI-style errors.

export class ApiError extends Error {
  /** @param {number} status HTTP status (0: no answer; 200: an error inside a stream) */
  constructor(status, message, { type = null, code = null, param = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = param;
    this.retryAfter = retryAfter; // seconds, from Retry-After on a 429
  }

  get isAuth() {
    return this.status === 401 || this.code === "invalid_api_key";
  }
}

/** An ApiError from a failed response: the {"error": {...}} body when there is one. */
async function errorFrom(response) {
  let error = null;
  try {
    const body = await response.json();
    if (body && typeof body.error === "object" && body.error) error = body.error;
  } catch {
    // not JSON: a proxy's page, an empty body
  }
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"));
  const message = (error && typeof error.message === "string" && error.message)
    || `${response.status} ${response.statusText || "error"}`;
  return new ApiError(response.status, message, {
    type: error?.type ?? null,
    code: error?.code ?? null,
    param: error?.param ?? null,
    retryAfter,
  });
}

/** Retry-After as seconds: delta-seconds or an HTTP date; null when absent or unreadable. */
function retryAfterSeconds(header) {
  if (header === null || !header.trim()) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

export class Client {
  /** @param {() => string} getKey the API key to send (empty: none) */
  constructor(getKey) {
    this.getKey = getKey;
  }

  headers(extra = {}) {
    const key = this.getKey();
    return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
  }

  async request(method, path, { json, body, signal } = {}) {
    const init = { method, headers: this.headers(), signal };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body; // FormData: the browser sets the multipart boundary
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (exc) {
      if (exc?.name === "AbortError") throw exc;
      throw new ApiError(0, `could not reach the server (${exc?.message || exc})`);
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async json(method, path, options) {
    const response = await this.request(method, path, options);
    return response.json();
  }

  health() {
    return fetch("/health").then((r) => r.json());
  }

  collections() {
    return this.json("GET", "/v1/collections");
  }

  documents(collection) {
    return this.json("GET", `/v1/collections/${encodeURIComponent(collection)}/documents`);
  }

  deleteDocument(collection, id) {
    const path = `/v1/collections/${encodeURIComponent(collection)}/documents/${encodeURIComponent(id)}`;
    return this.json("DELETE", path);
  }

  upload(collection, files) {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    return this.json("POST", `/v1/collections/${encodeURIComponent(collection)}/documents`, {
      body: form,
    });
  }

  job(id) {
    return this.json("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /**
   * Streams a chat answer. Calls onDelta(text) per content piece and returns
   * {finishReason, sources, usage} after [DONE]. Throws ApiError (a 4xx/5xx before the
   * stream, or an error event inside it) or the AbortError of `signal`.
   */
  async chat(body, { signal, onDelta }) {
    const response = await this.request("POST", "/v1/chat/completions", {
      json: { ...body, stream: true, stream_options: { include_usage: true } },
      signal,
    });
    const result = { finishReason: null, sources: [], usage: null };
    for await (const data of sseData(response.body)) {
      if (data === "[DONE]") return result;
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        continue;
      }
      if (event.error) {
        const e = event.error;
        throw new ApiError(200, e.message || "the answer failed", {
          type: e.type ?? null,
          code: e.code ?? null,
          param: e.param ?? null,
        });
      }
      for (const choice of event.choices || []) {
        const piece = choice.delta?.content;
        if (piece) onDelta(piece);
        if (choice.finish_reason) result.finishReason = choice.finish_reason;
      }
      if (Array.isArray(event.sources)) result.sources = event.sources;
      if (event.usage) result.usage = event.usage;
    }
    signal?.throwIfAborted(); // however the body ended, a stop is a stop
    throw new ApiError(200, "the stream ended before the answer was complete", {
      code: "stream_truncated",
    });
  }
}

/**
 * Yields each SSE event's data (its data: lines joined), comments and pings skipped.
 * Aborting the fetch's signal errors the body stream: the read below throws AbortError.
 */
export async function* sseData(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let boundary;
    while ((boundary = nextBoundary(buffer)) !== null) {
      const [end, skip] = boundary;
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + skip);
      const data = eventData(block);
      if (data !== null) yield data;
    }
  }
  buffer += decoder.decode();
  const data = eventData(buffer);
  if (data !== null) yield data;
}

function nextBoundary(buffer) {
  const match = /\r\n\r\n|\n\n|\r\r/.exec(buffer);
  return match ? [match.index, match[0].length] : null;
}

function eventData(block) {
  const lines = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (line.startsWith("data:")) lines.push(line.slice(line[5] === " " ? 6 : 5));
  }
  return lines.length ? lines.join("\n") : null;
}
