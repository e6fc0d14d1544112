"""Prompt layout and citation parsing, with the embedded model's real tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragline.generate.citations import cited_numbers
from ragline.generate.models import ModelNotPreparedError, is_prepared, resolve_model_path
from ragline.generate.prompt import PromptBuilder, PromptTooLongError
from ragline.generate.rag import cited_sources
from ragline.generate.types import ChatTurn
from ragline.retrieve.types import Passage

BUILTIN = "builtin:smollm2-135m-instruct"
SYSTEM = "Answer from the sources and cite them as [n]."


def _passage(chunk_id: int, source: str, position: int, score: float) -> Passage:
    text = f"Passage {chunk_id} from {source} at {position}. " + "Filler sentence. " * 20
    return Passage(chunk_id, text, source, score, position, "text", page=position + 1)


PASSAGES = [
    _passage(7, "b.pdf", 0, 0.9),
    _passage(3, "a.pdf", 2, 0.5),
    _passage(5, "a.pdf", 1, 0.7),
    _passage(9, "c.docx", 4, 0.1),
]


@pytest.fixture(scope="module")
def tokenizer(llm_models_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(BUILTIN, llm_models_dir))


def test_cited_numbers_reads_single_lists_and_ranges() -> None:
    text = "Cats purr [2]. Dogs bark [1, 3]. Both sleep [4-5][2]. Since [1990-2020]. See [9]."
    assert cited_numbers(text) == [2, 1, 3, 4, 5, 9]
    assert cited_numbers(text, valid=range(1, 5)) == [2, 1, 3, 4]
    assert cited_numbers("no citations here") == []


def test_canonical_order_gives_identical_context_whatever_the_scores(tokenizer) -> None:  # type: ignore[no-untyped-def]
    builder = PromptBuilder(tokenizer, SYSTEM, ordering="canonical")
    reordered = [Passage(**{**_asdict(p), "score": 1.0 - p.score}) for p in reversed(PASSAGES)]
    first = builder.build("What is in a.pdf?", PASSAGES)
    second = builder.build("A different, longer question about c.docx?", reordered)
    # Sources numbered by (document, position), not by score.
    assert [(s.source, s.position) for s in first.sources] == [
        ("a.pdf", 1),
        ("a.pdf", 2),
        ("b.pdf", 0),
        ("c.docx", 4),
    ]
    shared = _common_prefix(first.token_ids, second.token_ids)
    # Everything up to the question is shared: the question is the only difference.
    question_tokens = len(tokenizer.encode("A different, longer question about c.docx?"))
    assert shared >= first.prompt_tokens - question_tokens - 8
    assert first.text.index("[1] (a.pdf, page 2)") < first.text.index("What is in a.pdf?")


def test_score_order_breaks_the_shared_prefix(tokenizer) -> None:  # type: ignore[no-untyped-def]
    builder = PromptBuilder(tokenizer, SYSTEM, ordering="score")
    reordered = [Passage(**{**_asdict(p), "score": 1.0 - p.score}) for p in PASSAGES]
    first = builder.build("Question one?", PASSAGES)
    second = builder.build("Question one?", reordered)
    assert first.sources[0].chunk_id == 7 and second.sources[0].chunk_id == 9
    assert _common_prefix(first.token_ids, second.token_ids) < first.prompt_tokens // 2


def test_history_goes_after_sources_and_before_the_question(tokenizer) -> None:  # type: ignore[no-untyped-def]
    builder = PromptBuilder(tokenizer, SYSTEM)
    history = [ChatTurn("user", "Earlier question?"), ChatTurn("assistant", "Earlier answer [1].")]
    prompt = builder.build("Follow-up?", PASSAGES, history)
    text = prompt.text
    assert text.index("Sources:") < text.index("Earlier question?") < text.index("Follow-up?")
    assert text.rstrip().endswith("assistant")  # generation prompt last


def test_token_limit_drops_the_lowest_scored_sources(tokenizer) -> None:  # type: ignore[no-untyped-def]
    builder = PromptBuilder(tokenizer, SYSTEM)
    full = builder.build("Q?", PASSAGES)
    limit = full.prompt_tokens - 20
    trimmed = builder.build("Q?", PASSAGES, max_prompt_tokens=limit)
    assert trimmed.prompt_tokens <= limit
    assert 9 not in {s.chunk_id for s in trimmed.sources}  # score 0.1 went first
    assert 7 in {s.chunk_id for s in trimmed.sources}
    assert [s.number for s in trimmed.sources] == list(range(1, len(trimmed.sources) + 1))
    with pytest.raises(PromptTooLongError):
        builder.build("Q? " * 400, PASSAGES, max_prompt_tokens=100)


def test_cited_sources_map_numbers_back_to_passages(tokenizer) -> None:  # type: ignore[no-untyped-def]
    prompt = PromptBuilder(tokenizer, SYSTEM).build("Q?", PASSAGES)
    cited = cited_sources("It is so [3], and also [1]; not [12].", prompt.sources)
    assert [(s.number, s.chunk_id) for s in cited] == [(3, 7), (1, 5)]


def test_builtin_model_must_be_prepared(tmp_path: Path, llm_models_dir: Path) -> None:
    assert is_prepared(BUILTIN, llm_models_dir)
    with pytest.raises(ModelNotPreparedError, match="ragline model prepare"):
        resolve_model_path(BUILTIN, tmp_path)
    assert resolve_model_path("HuggingFaceTB/SmolLM2-360M-Instruct", tmp_path) == (
        "HuggingFaceTB/SmolLM2-360M-Instruct"
    )
    with pytest.raises(ValueError, match="unknown builtin"):
        resolve_model_path("builtin:nope", tmp_path)


def _asdict(passage: Passage) -> dict[str, object]:
    return {name: getattr(passage, name) for name in passage.__slots__}  # type: ignore[attr-defined]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def test_uncited_answers_are_attributed_by_similarity(embedder) -> None:  # type: ignore[no-untyped-def]
    from ragline.generate.citations import attribute

    sources = [
        "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
        "Mount Fuji is the highest mountain in Japan, at 3,776 metres.",
        "Sourdough bread is leavened with a culture of wild yeast and bacteria.",
    ]
    answer = (
        "Japan's highest mountain is Mount Fuji, which rises 3,776 metres. "
        "The Eiffel Tower was finished in 1889."
    )
    assert attribute(answer, sources, embedder.encode, threshold=0.5) == [1, 0]
    unrelated = "Quantum chromodynamics describes the strong interaction between quarks."
    assert attribute(unrelated, sources, embedder.encode, threshold=0.5) == []
    assert attribute("Yes.", sources, embedder.encode, threshold=0.5) == []  # too short
