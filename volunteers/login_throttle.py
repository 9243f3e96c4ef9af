"""Slowing password guessing: failed logins counted per e-mail and per IP, in Redis.

The counters live in Redis so that every app process, on every host, counts the
same failures. Recording a failure is one Lua script (INCR both counters, and
EXPIRE a counter on the first failure of its window), so processes counting at once
can neither lose a failure nor leave a counter that never expires.

After ``login_max_failures_email`` failures for one address, or
``login_max_failures_ip`` from one IP, within ``login_window_s``, logins are refused
until that window ends — before the password is even checked, so a blocked guesser
learns nothing and costs no argon2 work. A successful login clears its e-mail's
counter. It does not clear the IP's: otherwise someone with one valid account could
reset their IP's counter between guesses at other people's passwords; the IP limit
is higher for that reason (a France Services office shares one address).

Keys hold keyed hashes, never the address or the IP in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from dataclasses import dataclass

from redis.exceptions import RedisError

from volunteers.credentials import derive_key
from volunteers.runtime import Volunteers
from volunteers.settings import VolunteersSettings

log = logging.getLogger(__name__)

# KEYS: the e-mail's counter, the IP's counter. ARGV: window in ms.
# Returns the two counts and their remaining lives in ms.
_FAIL = """
local out = {}
for i = 1, 2 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 or redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
  out[#out + 1] = n
  out[#out + 1] = redis.call('PTTL', KEYS[i])
end
return out
"""
# KEYS: the e-mail's counter, the IP's counter. Returns counts and remaining lives in ms.
_PEEK = """
local out = {}
for i = 1, 2 do
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
  out[#out + 1] = redis.call('PTTL', KEYS[i])
end
return out
"""


@dataclass(frozen=True)
class Verdict:
    """Whether a login may be tried now; if not, for how long it stays refused."""

    retry_after_s: int = 0

    @property
    def allowed(self) -> bool:
        return self.retry_after_s <= 0

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after_s / 60))
        shown = f"{minutes} minute" + ("s" if minutes > 1 else "")
        return (
            "Trop de tentatives de connexion ont échoué. Par sécurité, la connexion est "
            f"bloquée pendant {shown}. Réessayez ensuite, ou demandez à un coordinateur "
            "de vous aider."
        )


class LoginThrottle:
    """Per e-mail and per IP failure counters for the login form."""

    def __init__(self, vol: Volunteers) -> None:
        self.vol = vol
        self._key = derive_key(vol.settings.secret_key, "login-throttle")
        self._fail = vol.redis.register_script(_FAIL)
        self._peek = vol.redis.register_script(_PEEK)

    @property
    def settings(self) -> VolunteersSettings:
        return self.vol.settings

    def _keys(self, email: str, ip: str) -> list[str]:
        def digest(kind: str, value: str) -> str:
            text = f"{kind}:{value}".encode()
            return hmac.new(self._key, text, hashlib.sha256).hexdigest()[:32]

        address = email.strip().lower()
        return [
            self.vol.key("login-failures", "email", digest("email", address)),
            self.vol.key("login-failures", "ip", digest("ip", ip)),
        ]

    def _verdict(self, reply: list[int]) -> Verdict:
        email_n, email_ttl, ip_n, ip_ttl = (int(x) for x in reply)
        wait_ms = 0
        if email_n >= self.settings.login_max_failures_email:
            wait_ms = max(wait_ms, email_ttl)
        if ip_n >= self.settings.login_max_failures_ip:
            wait_ms = max(wait_ms, ip_ttl)
        return Verdict(math.ceil(wait_ms / 1000) if wait_ms > 0 else 0)

    async def check(self, email: str, ip: str) -> Verdict:
        """Before checking a password: is this e-mail or this IP blocked?"""
        try:
            return self._verdict(await self._peek(keys=self._keys(email, ip)))
        except RedisError:
            # Redis down: the line is down too; let people in rather than lock everyone out.
            log.warning("login throttle unavailable (redis); login not limited")
            return Verdict()

    async def failed(self, email: str, ip: str) -> Verdict:
        """Count a failed login; the verdict says whether this one reached a limit."""
        window_ms = int(self.settings.login_window_s * 1000)
        try:
            return self._verdict(await self._fail(keys=self._keys(email, ip), args=[window_ms]))
        except RedisError:
            log.warning("login throttle unavailable (redis); failure not counted")
            return Verdict()

    async def succeeded(self, email: str) -> None:
        """The address's owner proved who they are: their failures are forgotten."""
        try:
            await self.vol.redis.delete(self._keys(email, "")[0])
        except RedisError:
            log.warning("login throttle unavailable (redis); counter not cleared")
