"""Text sealed with AES-256-GCM (the encryption-at-rest key): `hpe1:` + base64(nonce, ciphertext).
Unsealed text (written before the key was set) is read as it is."""

from __future__ import annotations

import base64
import os

__all__ = ["Sealer"]

_PREFIX = "hpe1:"


class Sealer:
    def __init__(self, key: bytes | None) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key) if key is not None else None

    def seal(self, text: str) -> str:
        if self._aead is None:
            return text
        nonce = os.urandom(12)
        return _PREFIX + base64.b64encode(nonce + self._aead.encrypt(nonce, text.encode(), None)).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(_PREFIX):
            return stored
        if self._aead is None:
            raise ValueError("this text is encrypted at rest; set HOMEPORT_ENCRYPTION_KEY to read it")
        raw = base64.b64decode(stored[len(_PREFIX) :])
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()
