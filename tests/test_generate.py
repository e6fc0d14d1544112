"""The real vLLM CPU engine on the embedded model: streaming, stop, length, seed, abort,
prefix-cache reuse of canonically ordered context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ragline.generate.engine import GenerationEngine
from ragline.generate.prompt import PromptBuilder
from ragline.generate.rag import RagGenerator
from ragline.generate.types import SamplingOptions, TextDelta
from ragline.retrieve.types import Passage, RetrievalResult, StageTimings
from ragline.settings import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

QUESTION = "What is the capital of France? Answer in one sentence."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(llm_models_dir: Path) -> AsyncIterator[GenerationEngine]:
    settings = load_settings(
        storage={"models_dir": llm_models_dir},
        generation={"kv_cache_gb": 1, "max_model_len": 2048, "max_num_seqs": 8},
    )
    started = GenerationEngine.start(settings.generation, settings.models_dir)
    yield started
    started.shutdown()


def _prompt(engine: GenerationEngine, text: str) -> list[int]:
    rendered = engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return list(engine.tokenizer.encode(rendered, add_special_tokens=False))


async def _collect(stream: AsyncIterator[TextDelta]) -> list[TextDelta]:
    return [delta async for delta in stream]


async def _wait_idle(engine: GenerationEngine, timeout_s: float = 10.0) -> int:
    for _ in range(int(timeout_s / 0.05)):
        if engine.num_unfinished_requests() == 0:
            return 0
        await asyncio.sleep(0.05)
    return engine.num_unfinished_requests()


async def test_streams_deltas_with_stats(engine: GenerationEngine) -> None:
    ids = _prompt(engine, QUESTION)
    deltas = await _collect(engine.stream(ids, SamplingOptions(max_tokens=48, temperature=0)))
    assert len(deltas) > 2, "expected the answer in several pieces"
    assert all(not d.finished for d in deltas[:-1]) and deltas[-1].finished
    stats = deltas[-1].stats
    assert stats is not None
    assert stats.prompt_tokens == len(ids)
    assert stats.output_tokens == sum(d.token_count for d in deltas) > 2
    assert 0 < stats.ttft_s <= stats.total_s and stats.tpot_s > 0
    text = "".join(d.text for d in deltas)
    assert "Paris" in text
    assert stats.finish_reason == "stop"  # ended on its own end-of-turn token


async def test_max_tokens_ends_with_length(engine: GenerationEngine) -> None:
    text, stats = await engine.complete(
        _prompt(engine, "Write a long story about a lighthouse keeper."),
        SamplingOptions(max_tokens=7, temperature=0),
    )
    assert stats.output_tokens == 7 and stats.finish_reason == "length" and text


async def test_stop_sequence_cuts_the_answer(engine: GenerationEngine) -> None:
    ids = _prompt(engine, "List five fruits, one per line.")
    full, _ = await engine.complete(ids, SamplingOptions(max_tokens=40, temperature=0))
    words = [w for w in full.split() if len(w) > 3]
    assert len(words) >= 2, full
    stop_word = words[1]
    cut, stats = await engine.complete(
        ids, SamplingOptions(max_tokens=40, temperature=0, stop=[stop_word])
    )
    assert stop_word not in cut and full.startswith(cut.rstrip()[:10])
    assert len(cut) < len(full) and stats.finish_reason == "stop"


async def test_seed_makes_sampling_repeatable(engine: GenerationEngine) -> None:
    ids = _prompt(engine, "Invent a name for a cat.")
    options = SamplingOptions(max_tokens=16, temperature=1.0, top_p=1.0, seed=1234)
    first, _ = await engine.complete(ids, options)
    second, _ = await engine.complete(ids, options)
    assert first == second


async def test_concurrent_requests_all_complete(engine: GenerationEngine) -> None:
    prompts = [_prompt(engine, f"Count from {n} to {n + 5}.") for n in range(4)]
    results = await asyncio.gather(
        *(engine.complete(ids, SamplingOptions(max_tokens=12, temperature=0)) for ids in prompts)
    )
    assert all(stats.output_tokens > 0 for _, stats in results)
    assert await _wait_idle(engine) == 0


async def test_closing_the_stream_aborts_the_request(engine: GenerationEngine) -> None:
    ids = _prompt(engine, "Write a very long essay about the history of bread.")
    stream = engine.stream(ids, SamplingOptions(max_tokens=1000, temperature=0))
    received = 0
    async for _ in stream:
        received += 1
        if received == 3:
            break
    assert engine.num_unfinished_requests() == 1  # still generating, nobody reading
    await stream.aclose()  # what a disconnected HTTP client's generator does
    assert await _wait_idle(engine) == 0


async def test_cancelled_consumer_aborts_the_request(engine: GenerationEngine) -> None:
    ids = _prompt(engine, "Write a very long essay about the history of cheese.")
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.stream(ids, SamplingOptions(max_tokens=1000, temperature=0)):
            first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=60)
    assert engine.num_unfinished_requests() == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await _wait_idle(engine) == 0


def _passages() -> list[Passage]:
    topics = ["rivers", "mountains", "deserts", "forests", "oceans", "glaciers"]
    return [
        Passage(
            chunk_id=i,
            text=f"Notes on {topic}. " + f"The {topic} of the world vary widely in size. " * 12,
            source=f"atlas-{i}.pdf",
            score=1.0 / (i + 1),
            position=0,
            category="text",
        )
        for i, topic in enumerate(topics)
    ]


async def test_second_question_over_same_passages_reuses_the_kv_cache(
    engine: GenerationEngine,
) -> None:
    settings = load_settings().generation
    generator = RagGenerator(engine, settings, ordering="canonical")
    passages = _passages()
    first = RetrievalResult("q1", passages, StageTimings())
    # The second question ranks the same passages the other way round.
    reranked = [Passage(**{**_fields(p), "score": -p.score}) for p in passages]
    second = RetrievalResult("q2", list(reversed(reranked)), StageTimings())
    options = SamplingOptions(max_tokens=4, temperature=0)

    prompt1 = generator.build_prompt("Which is the largest ocean?", first)
    prompt2 = generator.build_prompt("Where are glaciers found?", second)
    assert prompt1.prompt_tokens > 600
    _, stats1 = await engine.complete(prompt1.token_ids, options)
    _, stats2 = await engine.complete(prompt2.token_ids, options)
    assert stats2.cached_prompt_tokens > 0.7 * stats2.prompt_tokens
    assert stats2.cached_prompt_tokens > stats1.cached_prompt_tokens

    # Score order puts a different passage first: only the system prompt can be reused.
    by_score = PromptBuilder(engine.tokenizer, settings.system_prompt, ordering="score")
    scored = by_score.build("Where are deserts found?", reranked)
    _, stats3 = await engine.complete(scored.token_ids, options)
    assert stats3.cached_prompt_tokens < 0.3 * stats3.prompt_tokens


async def test_rag_stream_returns_cited_sources(engine: GenerationEngine) -> None:
    generator = RagGenerator(engine, load_settings().generation)
    passages = [
        Passage(
            1, "The Eiffel Tower is in Paris and was finished in 1889.", "paris.md", 1.0, 0, "text"
        ),
        Passage(2, "Mount Fuji is the highest mountain in Japan.", "japan.md", 0.5, 0, "text"),
    ]
    prompt = generator.build_prompt(
        "When was the Eiffel Tower finished?", RetrievalResult("q", passages, StageTimings())
    )
    deltas = [
        d async for d in generator.stream(prompt, SamplingOptions(max_tokens=48, temperature=0))
    ]
    final = deltas[-1]
    assert final.finished and final.stats is not None
    answer = "".join(d.text for d in deltas)
    assert answer.strip()
    # Every reported citation is a source the model was given and cited in the text.
    for source in final.cited:
        assert f"[{source.number}" in answer or f"{source.number}]" in answer
        assert source.chunk_id in {1, 2}


def _fields(passage: Passage) -> dict[str, object]:
    return {name: getattr(passage, name) for name in passage.__slots__}  # type: ignore[attr-defined]
