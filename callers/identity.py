"""Caller identification without keeping phone numbers in the clear.

A caller key is a keyed HMAC of the normalised phone number: stable for the same
number (so returning callers are recognised), useless to anyone without SECRET_KEY,
and safe to log. The raw number is only kept where a callback needs it, encrypted
with Fernet under a key derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken

ANONYMOUS = {"", "anonymous", "restricted", "unknown", "private", "+266696687", "+7378742833"}


def _derive(secret_key: str, purpose: str) -> bytes:
    """A 32-byte subkey of SECRET_KEY for one purpose, so keys never mix."""
    if not secret_key:
        raise ValueError("SECRET_KEY is required")
    return hmac.new(secret_key.encode(), f"permanence:{purpose}".encode(), hashlib.sha256).digest()


def normalize_number(raw: str, region: str = "FR") -> str | None:
    """E.164 form of a dialable number, or None (withheld, malformed, not a number)."""
    text = (raw or "").strip()
    if text.lower() in ANONYMOUS or text.startswith("client:"):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class CallerIdentity:
    """Caller keys and the encryption of contact details, both keyed from SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        self._hmac_key = _derive(secret_key, "caller-key")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret_key, "contact-vault")))

    def caller_key(self, number: str) -> str:
        """The keyed hash of a phone number ('' when the number is withheld)."""
        normalized = normalize_number(number)
        if normalized is None:
            return ""
        digest = hmac.new(self._hmac_key, normalized.encode(), hashlib.sha256).hexdigest()
        return "ck" + digest[:30]

    def seal(self, value: str) -> str:
        """Encrypt a contact detail (phone, e-mail, message) for storage."""
        return self._fernet.encrypt(value.encode()).decode() if value else ""

    def open(self, token: str) -> str:
        """Decrypt what seal() produced; '' for an empty or unreadable token."""
        if not token:
            return ""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return ""


def spoken_tail(number: str) -> str:
    """The last four digits, grouped as French speakers say them ('12 34')."""
    digits = [c for c in number if c.isdigit()]
    tail = "".join(digits[-4:])
    return f"{tail[:2]} {tail[2:]}" if len(tail) == 4 else tail
