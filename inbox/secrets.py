"""Channel credentials at rest: Fernet, with a key derived from security.secret_key."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr


class Secret(SecretStr):
    """A credential: masked in `str()`, `repr()`, `format()`, f-strings and pydantic's JSON;
    `json.dumps` refuses it outright. `get_secret_value()` for the one library call that needs
    it. (pydantic's SecretStr, with a shorter mask.)"""

    def _display(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"


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
