"""Pydantic models at the HTTP boundary (OpenAI shapes where OpenAI has one).

Requests ignore fields they do not know (OpenAI clients send many), responses are built
from these models so the OpenAPI schema documents them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ragline.retrieve.types import Mode

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # vLLM's seed range (msgpack and torch take no more)
MAX_STOPS = 16
MAX_STOP_CHARS = 1024


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """Where in a decoded JSON value a string holds a lone surrogate (``"\\ud800"`` is valid
    JSON but no text: tokenizers, SQLite and UTF-8 encoders all fail on it), else None."""
    if isinstance(value, str):
        return where if any("\ud800" <= c <= "\udfff" for c in value) else None
    if isinstance(value, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next(
        (found for path, v in items if (found := lone_surrogate(v, path)) is not None), None
    )


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        where = lone_surrogate(data)
        if where is not None:
            raise PydanticCustomError(
                "invalid_unicode",
                "{where} holds a lone surrogate (\\ud800-\\udfff): send valid Unicode text",
                {"where": where or "the request"},
            )
        return data


# -- chat and completions ---------------------------------------------------------------


class ContentPart(_Request):
    type: str = "text"
    text: str | None = None


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class StreamOptions(_Request):
    include_usage: bool = False


class SamplingFields(_Request):
    """What chat and completion requests share: the model and the sampling options."""

    model: str = Field(max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = Field(
        default=None, description=f"up to {MAX_STOPS} non-empty strings"
    )
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    n: int = Field(default=1, ge=1, le=1, description="only one choice is generated")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOPS:
            raise PydanticCustomError("too_many_stops", f"at most {MAX_STOPS} stop strings")
        if not all(0 < len(s) <= MAX_STOP_CHARS for s in stops):
            raise PydanticCustomError(
                "invalid_stop", f"stop strings must hold 1 to {MAX_STOP_CHARS} characters"
            )
        return stop

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingFields):
    model: str = Field(description="a collection name (see /v1/models)", max_length=256)
    messages: list[ChatMessage] = Field(max_length=256)
    # ragline extras
    collection: str | None = Field(default=None, description="overrides `model`")
    rerank: bool | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)


class CompletionRequest(SamplingFields):
    prompt: str | list[str]


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = PromptTokensDetails()


class SourceOut(BaseModel):
    number: int
    source: str  # file name
    page: int | None = None
    headings: list[str] = Field(default_factory=list)
    chunk_id: int
    score: float
    text: str  # snippet
    cited: bool = False  # the answer cites it as [number]
    # The answer cites nothing, but some of its sentences match this source (see README).
    attributed: bool = False


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    sources: list[SourceOut]
    system_fingerprint: str | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


# -- models and embeddings --------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "ragline"
    kind: Literal["collection", "generation"] = "collection"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingRequest(_Request):
    input: str | list[str] = Field(description="a text or up to 256 texts")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage


# -- retrieval --------------------------------------------------------------------------


class Filters(_Request):
    sources: list[str] = Field(
        default_factory=list, description="file names or their glob patterns (no '/')"
    )
    categories: list[str] = Field(default_factory=list)
    file_types: list[str] = Field(default_factory=list)
    ingested_after: float | None = None
    ingested_before: float | None = None


class RetrieveRequest(_Request):
    query: str | None = Field(default=None, min_length=1, max_length=4096)
    messages: list[ChatMessage] | None = Field(
        default=None,
        max_length=256,
        description="instead of `query`: a conversation whose last user message is "
        "retrieved with the turns before it",
    )
    collection: str = Field(max_length=256)
    top_k: int | None = Field(default=None, ge=1, le=200)
    mode: Mode = "hybrid"
    rerank: bool | None = None
    compress: bool | None = None
    filters: Filters = Filters()

    @model_validator(mode="after")
    def _query_or_messages(self) -> RetrieveRequest:
        if (self.query is None) == (self.messages is None):
            raise ValueError("give either query or messages")
        return self


class PassageOut(BaseModel):
    rank: int
    chunk_id: int
    source: str
    page: int | None
    sheet: str | None
    headings: list[str]
    category: str
    score: float
    dense_score: float | None
    bm25_score: float | None
    rerank_score: float | None
    text: str


class ContextOut(BaseModel):
    text: str
    tokens_in: int
    tokens_out: int


class RetrieveResponse(BaseModel):
    object: Literal["retrieval"] = "retrieval"
    collection: str
    query: str
    rewrite: str | None = Field(
        default=None, description="a follow-up's query as rewritten with the conversation"
    )
    cache_hit: bool
    passages: list[PassageOut]
    timings_ms: dict[str, float]
    context: ContextOut | None


# -- collections, documents, jobs -------------------------------------------------------


class CollectionOut(BaseModel):
    name: str
    documents: int
    chunks: int
    generation: int
    index_kind: str
    size_bytes: int
    embedding_model: str | None
    median_chunk_tokens: float | None = Field(
        default=None, description="median chunk size in embedding-model tokens"
    )
    small_chunk_share: float | None = Field(
        default=None, description="share of chunks under 32 tokens"
    )
    embedding_runtimes: list[str] = Field(
        default_factory=list,
        description="runtimes that made this collection's vectors (e.g. openvino-int8)",
    )


class CollectionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CollectionOut]


class DocumentOut(BaseModel):
    id: int
    name: str
    file_type: str
    size_bytes: int
    chunks: int
    ingested_at: float


class DocumentList(BaseModel):
    object: Literal["list"] = "list"
    collection: str
    data: list[DocumentOut]


PATH_MAX = 4096  # Linux: bytes in a path, the final NUL included


class IngestPaths(_Request):
    paths: list[str] = Field(min_length=1, max_length=1000)
    force: bool = False

    @field_validator("paths")
    @classmethod
    def _plain_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path or "\x00" in path or len(path.encode("utf-8", "surrogatepass")) >= PATH_MAX:
                raise PydanticCustomError(
                    "invalid_path",
                    f"each path must be 1 to {PATH_MAX - 1} bytes without NUL characters",
                )
        return paths


class FileError(BaseModel):
    file: str
    error: str


class JobOut(BaseModel):
    id: str
    object: Literal["ingest.job"] = "ingest.job"
    collection: str
    status: Literal["queued", "running", "succeeded", "failed"]
    files_total: int
    files_done: int
    chunks_embedded: int
    outcomes: dict[str, int]  # files per status: ingested, updated, unchanged, ...
    errors: list[FileError]
    message: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    executor: str | None = None  # where it parsed and embedded (local or ray), once done


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    engine: dict[str, Any]
    redis: Literal["ok", "down", "unused"]
    collections: int | None = Field(
        description="collections the key may use; null without a key when keys are set"
    )
    generation: dict[str, int]
    ingest_queue: int
    encoders: dict[str, Any] = Field(
        default_factory=dict,
        description="the runtime each encoder chose (backend-precision, gate, speed-up)",
    )
