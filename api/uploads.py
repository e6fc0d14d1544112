"""What an ingestion request may hand over: uploaded files (checked names, types and
sizes) or server paths under the configured ingest roots."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from starlette.datastructures import FormData, UploadFile

from ragline.api.errors import ApiError
from ragline.api.jobrecord import JobRecord
from ragline.ingest.confine import under
from ragline.ingest.pipeline import discover
from ragline.settings import Settings

_READ = 1 << 20
MAX_NAME_BYTES = 255  # NAME_MAX of Linux file systems, in bytes of UTF-8


UPLOAD_FIELD = "files"


def upload_dir(data_dir: Path, collection: str) -> Path:
    """The collection's uploads: each job's files in a folder of its own until the job
    ends; documents are stored as this folder's file of their name, so uploading a name
    again updates the document."""
    return data_dir / "uploads" / collection


async def upload_job(collection: str, form: FormData, settings: Settings) -> JobRecord:
    """The ingestion job of an upload, its files saved in the job's own folder (two
    uploads of one name never overwrite each other before they are read)."""
    unknown = sorted({key for key, _ in form.multi_items()} - {UPLOAD_FIELD})
    if unknown:
        raise ApiError(
            400,
            f"unknown form field(s) {unknown}: send files as {UPLOAD_FIELD!r}",
            param=unknown[0],
        )
    uploads = [v for v in form.getlist(UPLOAD_FIELD) if isinstance(v, UploadFile)]
    if len(uploads) != len(form.getlist(UPLOAD_FIELD)) or not uploads:
        raise ApiError(
            400, f"send one or more files in the form field {UPLOAD_FIELD!r}", param="files"
        )
    folder = upload_dir(settings.storage.data_dir, collection).resolve()
    job = JobRecord(collection=collection, paths=[])
    staging = folder / ".jobs" / job.id
    try:
        files = await save_uploads(
            uploads,
            staging,
            settings.api.upload_extensions,
            int(settings.parsing.max_file_mb * 2**20),
            int(settings.api.max_upload_mb * 2**20),
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    job.paths = [str(f) for f in files]
    job.sources = {str(f): str(folder / f.name) for f in files}
    job.staging = str(staging)
    job.roots = [str(staging)]
    return job


def discard_uploads(job: JobRecord) -> None:
    if job.staging:
        shutil.rmtree(job.staging, ignore_errors=True)


def safe_filename(raw: str | None) -> str:
    """The upload's own name, or 400: no directories, no hidden or special names."""
    name = (raw or "").strip()
    if not name:
        raise ApiError(400, "every uploaded file needs a file name", param="files")
    if (
        "/" in name
        or "\\" in name
        or name.startswith(".")
        or any(ord(c) < 32 or c == "\x7f" or "\ud800" <= c <= "\udfff" for c in name)
    ):
        raise ApiError(
            400,
            f"invalid file name {name!r}: a plain name without directories is required",
            param="files",
            code="invalid_file_name",
        )
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise ApiError(
            400,
            f"file name too long: {size} bytes of UTF-8, at most {MAX_NAME_BYTES}",
            param="files",
            code="invalid_file_name",
        )
    return name


def check_extension(name: str, allowed: Sequence[str]) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in {e.lower() for e in allowed}:
        raise ApiError(
            415,
            f"unsupported file type {suffix or '(none)'!r} for {name!r}; "
            f"supported: {' '.join(sorted(allowed))}",
            param="files",
            code="unsupported_file_type",
        )


async def save_uploads(
    files: Sequence[UploadFile],
    target: Path,
    allowed: Sequence[str],
    max_file_bytes: int,
    max_total_bytes: int | None = None,
) -> list[Path]:
    """Check every file before writing any; write each to a temporary name and rename all
    at the end, so a refused request leaves no file behind and replaces nothing. The files'
    own bytes count against ``max_total_bytes`` (the multipart framing does not)."""
    names = [safe_filename(f.filename) for f in files]
    if len(set(names)) != len(names):
        raise ApiError(400, "the same file name appears twice in one upload", param="files")
    for name in names:
        check_extension(name, allowed)
    target.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    total = 0
    try:
        for upload, name in zip(files, names, strict=True):
            # Not derived from the name: a name of 255 bytes has no room for a suffix.
            part = target / f".upload-{uuid.uuid4().hex}.part"
            staged.append((part, target / name))
            written = 0
            with part.open("wb") as out:
                while block := await upload.read(_READ):
                    written += len(block)
                    if written > max_file_bytes:
                        raise ApiError(
                            413,
                            f"{name} is over the {max_file_bytes / 2**20:.0f} MiB file limit",
                            param="files",
                            code="file_too_large",
                        )
                    total += len(block)
                    if max_total_bytes is not None and total > max_total_bytes:
                        raise ApiError(
                            413,
                            f"the files are over the {max_total_bytes / 2**20:g} MiB upload limit",
                            param="files",
                            code="request_too_large",
                        )
                    out.write(block)
            if written == 0:
                raise ApiError(400, f"{name} is empty", param="files", code="empty_file")
    except BaseException:
        for part, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        raise
    for part, final in staged:
        os.replace(part, final)
    return [final for _, final in staged]


def allowed_paths(paths: Sequence[str], roots: Sequence[Path]) -> list[Path]:
    """Files named (directly or under folders) that all lie under an ingest root; 403
    otherwise, symlinks included (they are resolved before the check)."""
    if not roots:
        raise ApiError(
            403,
            "ingesting server paths is disabled: configure api.ingest_roots, or upload files",
            param="paths",
            code="paths_disabled",
        )
    resolved_roots = [Path(root).resolve() for root in roots]
    try:
        for raw in paths:
            path = Path(raw)
            if not path.is_absolute() or not under(path.resolve(), resolved_roots):
                raise ApiError(
                    403,
                    f"{raw!r} is not under an allowed ingest root",
                    param="paths",
                    code="path_not_allowed",
                )
        files = discover(paths)
    except FileNotFoundError as exc:
        raise ApiError(400, str(exc), param="paths", code="not_found") from None
    except (OSError, ValueError) as exc:  # a name too long, a loop of links, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ApiError(
            400, f"unusable path: {reason}", param="paths", code="invalid_path"
        ) from None
    for file in files:
        if not under(file, resolved_roots):  # a symlink out of the root
            raise ApiError(
                403,
                f"{file.name!r} leads outside the allowed ingest roots",
                param="paths",
                code="path_not_allowed",
            )
    if not files:
        raise ApiError(400, "no files found under the given paths", param="paths")
    return files
