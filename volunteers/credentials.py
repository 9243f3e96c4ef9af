"""Passwords (argon2) and small secrets sealed at rest (Fernet keyed from SECRET_KEY)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash with its own salt and parameters."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches; never raises on a bad or foreign hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash uses weaker parameters than today's (rehash at next login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so one leaked derived key reveals nothing else."""
    return hmac.new(secret_key.encode(), f"permanence:{purpose}".encode(), hashlib.sha256).digest()


class Sealer:
    """Encrypts short texts (phone numbers) with a Fernet key derived from SECRET_KEY."""

    def __init__(self, secret_key: str, purpose: str = "volunteer-phone") -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, purpose)))

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode() if text else ""

    def open(self, sealed: str) -> str:
        """The clear text, or '' when nothing is sealed or the key changed."""
        if not sealed:
            return ""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return ""
