"""Channel credentials at rest: Fernet, with a key derived from security.secret_key."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Secret(str):
    """A string that never shows itself in a repr, a log line or an f-string with !r."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


class CredentialBox:
    def __init__(self, secret_key: str) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"switchboard-credentials",
                    info=b"fernet-v1")
        self._fernet = Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))

    def seal(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials).encode())

    def open(self, sealed: bytes) -> dict[str, Secret]:
        try:
            data = json.loads(self._fernet.decrypt(bytes(sealed)))
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with this secret key") from exc
        return {k: Secret(v) for k, v in data.items()}
