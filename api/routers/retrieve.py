"""POST /v1/retrieve: passages with their scores and per-stage timings, no generation."""

from __future__ import annotations

import asyncio
import time
from pathlib import PurePath

from fastapi import APIRouter

from ragline.api.deps import PrincipalDep, ServicesDep
from ragline.api.errors import ApiError
from ragline.api.routers.common import ERRORS
from ragline.api.schemas import ContextOut, PassageOut, RetrieveRequest, RetrieveResponse
from ragline.api.serving.chat import parse_conversation
from ragline.retrieve.types import MetadataFilter, RetrievalRequest

router = APIRouter(tags=["retrieval"])


@router.post("/v1/retrieve", response_model=RetrieveResponse, responses=ERRORS)
async def retrieve(
    body: RetrieveRequest, services: ServicesDep, principal: PrincipalDep
) -> RetrieveResponse:
    opened = services.collection(body.collection, principal)
    if body.rerank and not services.components.reranker_available:
        raise ApiError(400, "reranking is unavailable: no reranker model", param="rerank")
    filters = body.filters
    if any("/" in name for name in filters.sources):
        # Clients see file names only; a pattern over the server's paths would let them
        # probe where files live.
        raise ApiError(
            400,
            "filters.sources holds file names or their patterns, without '/'",
            param="filters.sources",
        )
    question, turns = body.query or "", []
    if body.messages is not None:
        conversation = parse_conversation(body.messages)
        question, turns = conversation.question, conversation.turns()
    request = RetrievalRequest(
        question,
        top_k=body.top_k,
        rerank=body.rerank,
        mode=body.mode,
        compress=body.compress,
        filters=MetadataFilter(
            names=filters.sources,
            categories=filters.categories,
            file_types=[t.upper() for t in filters.file_types],
            ingested_after=filters.ingested_after,
            ingested_before=filters.ingested_before,
        ),
    )
    started = time.perf_counter()
    result = await asyncio.to_thread(opened.retrieve, request, turns)
    services.metrics.observe_retrieval(result.timings.stages, time.perf_counter() - started)
    context = result.context
    return RetrieveResponse(
        collection=body.collection,
        query=question,
        rewrite=result.rewrite,
        cache_hit=result.cache_hit,
        passages=[
            PassageOut(
                rank=rank,
                chunk_id=p.chunk_id,
                source=PurePath(p.source).name,
                page=p.page,
                sheet=p.sheet,
                headings=list(p.headings),
                category=p.category,
                score=p.score,
                dense_score=p.dense_score,
                bm25_score=p.bm25_score,
                rerank_score=p.rerank_score,
                text=p.text,
            )
            for rank, p in enumerate(result.passages, start=1)
        ],
        timings_ms={k: round(v, 3) for k, v in result.timings.stages.items()},
        context=(
            ContextOut(
                text=context.text, tokens_in=context.tokens_in, tokens_out=context.tokens_out
            )
            if context is not None
            else None
        ),
    )
