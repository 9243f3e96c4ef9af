"""X-Twilio-Signature validation for every Twilio webhook.

Twilio signs the URL it called plus the POST parameters. Behind a TLS proxy the
request the app sees is not the URL Twilio called, so the URL is rebuilt from
PUBLIC_BASE_URL + path + query, never from the Host header.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.datastructures import FormData, UploadFile
from twilio.request_validator import RequestValidator


def public_url(base: str, request: Request) -> str:
    """The URL Twilio called, as configured (scheme and host from PUBLIC_BASE_URL)."""
    query = request.url.query
    return base.rstrip("/") + request.url.path + (f"?{query}" if query else "")


async def verified_form(
    request: Request, validator: RequestValidator | None, base: str
) -> dict[str, str]:
    """The webhook's parameters if the signature is right; 403 (nothing done) otherwise,
    and always without a validator (no auth token configured)."""
    signature = request.headers.get("x-twilio-signature", "")
    if validator is None:
        raise HTTPException(status_code=403, detail="Twilio is not configured on this server")
    form: FormData = await request.form()
    if not signature or any(isinstance(v, UploadFile) for _, v in form.multi_items()):
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    if not validator.validate(public_url(base, request), form, signature):
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return {k: str(v) for k, v in form.multi_items()}
