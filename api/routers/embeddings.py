"""POST /v1/embeddings: the ingestion embedding model, OpenAI format."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from fastapi import APIRouter

from ragline.api.deps import PrincipalDep, ServicesDep
from ragline.api.errors import ApiError
from ragline.api.routers.common import ERRORS
from ragline.api.schemas import EmbeddingItem, EmbeddingList, EmbeddingRequest, EmbeddingUsage

router = APIRouter(tags=["embeddings"])
MAX_INPUTS = 256


@router.post("/v1/embeddings", response_model=EmbeddingList, responses=ERRORS)
async def embeddings(
    body: EmbeddingRequest, services: ServicesDep, principal: PrincipalDep
) -> EmbeddingList:
    """L2-normalised vectors (cosine = dot product), as stored in the collections."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS:
        raise ApiError(400, f"input must hold 1 to {MAX_INPUTS} texts", param="input")
    if any(not text.strip() for text in texts):
        raise ApiError(400, "input texts must not be empty", param="input")
    vectors = await asyncio.to_thread(services.components.embedder.encode, texts)
    tokens = await asyncio.to_thread(services.components.embedder.count_tokens, texts)
    items = [
        EmbeddingItem(
            index=i,
            embedding=(
                base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
                if body.encoding_format == "base64"
                else [float(x) for x in v]
            ),
        )
        for i, v in enumerate(vectors)
    ]
    return EmbeddingList(
        data=items,
        model=services.settings.embedding.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
