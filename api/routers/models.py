"""GET /v1/models: the generation model and one entry per collection the key may use."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ragline.api.deps import PrincipalDep, ServicesDep
from ragline.api.errors import not_found
from ragline.api.routers.common import ERRORS
from ragline.api.schemas import ModelCard, ModelList

router = APIRouter(tags=["models"])


async def _cards(services: ServicesDep, principal: PrincipalDep) -> list[ModelCard]:
    names = await asyncio.to_thread(services.collections.names)
    cards = [ModelCard(id=services.model_id, kind="generation")]
    cards += [ModelCard(id=name) for name in names if principal.can_use(name)]
    return cards


@router.get("/v1/models", response_model=ModelList, responses=ERRORS)
async def list_models(services: ServicesDep, principal: PrincipalDep) -> ModelList:
    """Chat with a collection by passing its name as ``model``."""
    return ModelList(data=await _cards(services, principal))


@router.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=ERRORS)
async def get_model(model_id: str, services: ServicesDep, principal: PrincipalDep) -> ModelCard:
    for card in await _cards(services, principal):
        if card.id == model_id:
            return card
    raise not_found(f"model {model_id!r}", param="model")
