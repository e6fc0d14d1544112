"""Collections and their documents; adding documents queues an ingestion job (202)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path, PurePath
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from ragline.api.auth import Principal
from ragline.api.deps import PrincipalDep, ServicesDep
from ragline.api.errors import ApiError, not_found
from ragline.api.jobs import JobQueueUnavailable, JobRecord
from ragline.api.routers.common import ERRORS
from ragline.api.schemas import (
    CollectionList,
    CollectionOut,
    Deleted,
    DocumentList,
    DocumentOut,
    IngestPaths,
    JobOut,
)
from ragline.api.services import Services
from ragline.api.uploads import allowed_paths, discard_uploads, upload_dir, upload_job
from ragline.ingest.collection import CollectionError, CollectionInfo, validate_name
from ragline.ingest.docstore import DocumentRecord
from ragline.service.collections import (
    AmbiguousDocument,
    CollectionBusy,
    DocumentNotFound,
)

router = APIRouter(tags=["collections"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["files"],
                }
            },
            "application/json": {"schema": IngestPaths.model_json_schema()},
        },
    }
}


def _info(info: CollectionInfo) -> CollectionOut:
    return CollectionOut(
        name=info.name,
        documents=info.documents,
        chunks=info.chunks,
        generation=info.generation,
        index_kind=info.index_kind,
        size_bytes=info.size_bytes,
        embedding_model=info.embedding_model,
        median_chunk_tokens=info.chunk_sizes.median_tokens,
        small_chunk_share=info.chunk_sizes.share_small,
        embedding_runtimes=info.embedding_runtimes,
    )


def _writable_name(name: str, principal: Principal) -> str:
    try:
        validate_name(name)
    except CollectionError as exc:
        raise ApiError(400, str(exc), param="name", code="invalid_collection_name") from None
    if not principal.can_use(name):
        raise not_found(f"collection {name!r}", param="name")
    return name


@router.get("/v1/collections", response_model=CollectionList, responses=ERRORS)
async def list_collections(services: ServicesDep, principal: PrincipalDep) -> CollectionList:
    def infos() -> list[CollectionInfo]:
        collections = services.collections
        return collections.infos([n for n in collections.names() if principal.can_use(n)])

    return CollectionList(data=[_info(info) for info in await asyncio.to_thread(infos)])


@router.get("/v1/collections/{name}", response_model=CollectionOut, responses=ERRORS)
async def get_collection(
    name: str, services: ServicesDep, principal: PrincipalDep
) -> CollectionOut:
    services.collection(name, principal)
    try:
        return _info(await asyncio.to_thread(services.collections.info, name))
    except CollectionError:  # dropped meanwhile
        raise not_found(f"collection {name!r}", param="name") from None


@router.delete("/v1/collections/{name}", response_model=Deleted, responses=ERRORS)
async def delete_collection(name: str, services: ServicesDep, principal: PrincipalDep) -> Deleted:
    """Delete a collection and its uploads (409 while an ingestion job writes it)."""
    services.collection(name, principal)

    def drop() -> None:
        try:
            services.registry.drop(name)
        except CollectionBusy as exc:
            raise ApiError(409, str(exc)) from None
        except CollectionError:  # dropped meanwhile
            raise not_found(f"collection {name!r}", param="name") from None
        shutil.rmtree(upload_dir(services.settings.storage.data_dir, name), ignore_errors=True)

    await asyncio.to_thread(drop)
    return Deleted(id=name, object="collection")


@router.post(
    "/v1/collections/{name}/documents",
    status_code=202,
    response_model=JobOut,
    responses={**ERRORS, 403: {}, 415: {}, 503: {}},
    openapi_extra=_UPLOAD_BODY,
)
async def add_documents(
    name: str, request: Request, response: Response, services: ServicesDep, principal: PrincipalDep
) -> JobOut:
    """Upload files (multipart, field ``files``) or name server paths under
    ``api.ingest_roots`` (JSON ``{"paths": [...]}``); the collection is created if needed.
    Returns the queued job; poll ``GET /v1/jobs/{id}``."""
    _writable_name(name, principal)
    settings = services.settings
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1000, max_fields=100) as form:
            job = await upload_job(name, form, settings)
    elif content_type.startswith("application/json"):
        try:
            body = IngestPaths.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ApiError(400, f"invalid body: {first['msg']}", param="paths") from None
        roots = settings.api.ingest_roots
        files = await asyncio.to_thread(allowed_paths, body.paths, roots)
        job = JobRecord(
            collection=name,
            paths=[str(f) for f in files],
            force=body.force,
            roots=[str(root.resolve()) for root in roots],  # checked again at each open
        )
    else:
        raise ApiError(
            415,
            'send files as multipart/form-data, or JSON {"paths": [...]}',
            code="unsupported_media_type",
        )
    try:
        await asyncio.to_thread(services.jobs.submit, job)
    except JobQueueUnavailable as exc:
        discard_uploads(job)  # nothing will ingest them
        raise ApiError(503, str(exc), code="queue_unavailable") from None
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job.out()


def _document_out(record: DocumentRecord) -> DocumentOut:
    return DocumentOut(
        id=record.doc_id,
        name=PurePath(record.source).name,
        file_type=record.file_type,
        size_bytes=record.size_bytes,
        chunks=record.n_chunks,
        ingested_at=record.ingested_at,
    )


@router.get("/v1/collections/{name}/documents", response_model=DocumentList, responses=ERRORS)
async def list_documents(name: str, services: ServicesDep, principal: PrincipalDep) -> DocumentList:
    services.collection(name, principal)
    try:
        records = await asyncio.to_thread(services.collections.documents, name)
    except CollectionError:  # dropped meanwhile
        raise not_found(f"collection {name!r}", param="name") from None
    return DocumentList(collection=name, data=[_document_out(r) for r in records])


@router.delete(
    "/v1/collections/{name}/documents/{doc}",
    response_model=Deleted,
    responses={**ERRORS, 409: {}},
)
async def delete_document(
    name: str, doc: str, services: ServicesDep, principal: PrincipalDep
) -> Deleted:
    """``doc`` is a document id, or its file name when that is unique in the collection."""
    services.collection(name, principal)
    await asyncio.to_thread(_delete_document, services, name, doc)
    return Deleted(id=doc, object="document")


def _delete_document(services: Services, name: str, doc: str) -> None:
    try:
        source = services.collections.find_document(name, doc).source
        services.collections.delete_documents(name, [source])
    except DocumentNotFound:
        raise not_found(f"document {doc!r}", param="doc") from None
    except (AmbiguousDocument, CollectionBusy) as exc:
        raise ApiError(409, str(exc)) from None
    except CollectionError:  # dropped meanwhile
        raise not_found(f"collection {name!r}", param="name") from None
    uploads = upload_dir(services.settings.storage.data_dir, name).resolve()
    if Path(source).parent == uploads:
        Path(source).unlink(missing_ok=True)
