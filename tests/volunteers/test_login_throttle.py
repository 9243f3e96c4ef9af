"""Failed logins are limited per e-mail and per IP, in Redis, across app processes."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import httpx
import pytest

from tests.volunteers.conftest import PASSWORD
from volunteers.login_throttle import LoginThrottle

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"accept": "text/html"}
BLOCKED = "Trop de tentatives de connexion ont échoué."


@pytest.fixture
def app_settings(app_settings):
    """Small limits, and a window far longer than any test takes."""
    return app_settings.model_copy(
        update={"login_max_failures_email": 3, "login_max_failures_ip": 5, "login_window_s": 900}
    )


def _client(app, ip: str = "192.0.2.10") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _try(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    token = CSRF.search((await client.get("/connexion", headers=HTML)).text).group(1)
    return await client.post(
        "/connexion",
        data={"email": email, "password": password, "csrf_token": token},
        headers=HTML,
    )


async def test_an_address_is_blocked_after_failures_with_a_clear_message(
    web_app, make_account, redis
):
    anne, bruno = await make_account("Anne"), await make_account("Bruno")
    async with _client(web_app) as client:
        for _ in range(2):
            wrong = await _try(client, anne.email, "pas-le-bon-mdp")
            assert wrong.status_code == 400 and "mot de passe incorrect" in wrong.text
        third = await _try(client, anne.email, "pas-le-bon-mdp")
        assert third.status_code == 429 and BLOCKED in third.text
        # Even the right password is refused now, before it is checked.
        right = await _try(client, anne.email.upper(), PASSWORD)
        assert right.status_code == 429
        assert "bloquée pendant 15 minutes" in right.text
        assert 0 < int(right.headers["retry-after"]) <= 900
        assert (await client.get("/benevole", headers=HTML)).status_code == 303
        # Another address from the same IP is not blocked by Anne's counter.
        assert (await _try(client, bruno.email, PASSWORD)).status_code == 303
    async with _client(web_app, "192.0.2.11") as client:
        # Unknown addresses are limited the same way (no hint of who has an account).
        for expected in (400, 400, 429):
            reply = await _try(client, "personne@exemple.fr", "x" * 12)
            assert reply.status_code == expected
    keys = [k async for k in redis.scan_iter(match="*login-failures*", count=1000)]
    assert keys and not any("exemple.fr" in k or "192.0.2" in k for k in keys)


async def test_a_success_resets_the_address_counter(web_app, make_account):
    anne = await make_account("Anne")
    async with _client(web_app, "192.0.2.20") as client:
        for _ in range(2):
            assert (await _try(client, anne.email, "pas-le-bon-mdp")).status_code == 400
        assert (await _try(client, anne.email, PASSWORD)).status_code == 303
    async with _client(web_app, "192.0.2.20") as client:
        # Two more failures after the success: still under the limit of three.
        for _ in range(2):
            assert (await _try(client, anne.email, "pas-le-bon-mdp")).status_code == 400
        assert (await _try(client, anne.email, PASSWORD)).status_code == 303


async def test_an_ip_is_blocked_across_app_processes(live, web_app, make_account):
    """Failures through two app instances (own event loops, own Redis connections) add up."""
    people = [await make_account(f"Personne {n}") for n in range(6)]
    other_app = httpx.AsyncClient(base_url=live.base)  # uvicorn thread, reached from 127.0.0.1
    async with other_app, _client(web_app, "127.0.0.1") as this_app:
        for n, person in enumerate(people[:4]):
            reply = await _try((this_app, other_app)[n % 2], person.email, "pas-le-bon-mdp")
            assert reply.status_code == 400
        fifth = await _try(other_app, people[4].email, "pas-le-bon-mdp")
        assert fifth.status_code == 429 and BLOCKED in fifth.text
        # The whole IP is refused now, on both instances, even with a right password.
        assert (await _try(this_app, people[5].email, PASSWORD)).status_code == 429
        assert (await _try(other_app, people[5].email, PASSWORD)).status_code == 429
    async with _client(web_app, "198.51.100.7") as elsewhere:
        assert (await _try(elsewhere, people[5].email, PASSWORD)).status_code == 303


async def test_failures_are_counted_atomically_and_expire(vol, redis):
    vol.settings = dataclasses.replace(
        vol.settings, login_max_failures_email=1000, login_max_failures_ip=1000
    )
    throttle = LoginThrottle(vol)
    await asyncio.gather(*(throttle.failed("a@exemple.fr", "203.0.113.1") for _ in range(50)))
    email_key, ip_key = throttle._keys("a@exemple.fr", "203.0.113.1")
    assert int(await redis.get(email_key)) == 50 and int(await redis.get(ip_key)) == 50
    assert 0 < await redis.pttl(email_key) <= 900_000 and 0 < await redis.pttl(ip_key)

    # A short window: once it has passed, the address may try again.
    vol.settings = dataclasses.replace(vol.settings, login_max_failures_email=2, login_window_s=0.5)
    for _ in range(2):
        await throttle.failed("b@exemple.fr", "203.0.113.2")
    async with asyncio.timeout(30):
        while not (await throttle.check("b@exemple.fr", "203.0.113.2")).allowed:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert await redis.exists(throttle._keys("b@exemple.fr", "")[0]) == 0
