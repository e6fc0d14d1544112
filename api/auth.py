"""API keys: ``Authorization: Bearer <key>`` checked against SHA-256 hashes in settings.

No keys configured means a local single-user server: authentication is off. A key sees
only its collections; any other collection is answered as "not found", exactly like one
that does not exist, so a key cannot learn which collections others have.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ragline.settings import ApiKey


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    collections: frozenset[str] | None  # None: every collection

    def can_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


ANONYMOUS = Principal("anonymous", None)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = [(k.sha256.lower(), k) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The key's principal, ANONYMOUS when auth is off, None when refused."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_key(token.strip())
        for stored, key in self._keys:
            # Constant-time comparison: timing must not reveal how much of a hash matched.
            if hmac.compare_digest(stored, digest):
                collections = None if "*" in key.collections else frozenset(key.collections)
                return Principal(key.name, collections)
        return None
