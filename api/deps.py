"""Request dependencies, as ``Annotated`` aliases routes declare in their signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragline.api.auth import Principal
from ragline.api.errors import ApiError
from ragline.api.services import Services

# auto_error=False: a missing key is our 401 with an OpenAI body, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="an API key from api.keys")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    header = f"Bearer {credentials.credentials}" if credentials else None
    principal = services.keys.authenticate(header)
    if principal is None:
        raise ApiError(
            401,
            "missing or invalid API key: send `Authorization: Bearer <key>`",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_optional_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The key's principal, or None for a request without a valid key (where it may
    still be answered, with less)."""
    header = f"Bearer {credentials.credentials}" if credentials else None
    return services.keys.authenticate(header)


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]
