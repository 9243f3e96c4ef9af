"""Plays Twilio's side of a phone call against the app, offline.

Every webhook is signed with twilio.request_validator's own algorithm (the test holds
the auth token, as Twilio does), then the TwiML answer is read like Twilio would:
<Redirect> is followed, <Gather> waits for keys (or falls through on silence),
<Enqueue> hands the call to the queue's wait URL.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import httpx
from twilio.request_validator import RequestValidator


@dataclass
class Twiml:
    """One TwiML answer, parsed."""

    root: ET.Element

    @classmethod
    def parse(cls, text: str) -> Twiml:
        return cls(ET.fromstring(text))

    def said(self) -> list[str]:
        return [el.text or "" for el in self.root.iter("Say")]

    def text(self) -> str:
        return " ".join(self.said())

    def first(self, tag: str) -> ET.Element | None:
        return next(self.root.iter(tag), None)

    def verbs(self) -> list[str]:
        return [el.tag for el in self.root]


@dataclass
class Webhooks:
    """Signs and posts webhooks the way Twilio does."""

    client: httpx.AsyncClient
    auth_token: str
    account_sid: str

    def sign(self, url: str, params: dict[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)

    async def post(
        self, url: str, params: dict[str, str], signature: str | None = None
    ) -> httpx.Response:
        headers = {"X-Twilio-Signature": signature if signature is not None
                   else self.sign(url, params)}
        return await self.client.post(url, data=params, headers=headers)


@dataclass
class PhoneCall:
    """A caller on the line: what they heard, and what they press."""

    hooks: Webhooks
    base_url: str
    call_sid: str
    from_: str
    to: str
    heard: list[str] = field(default_factory=list)
    current: Twiml | None = None
    queue_sid: str = ""

    def params(self, **extra: str) -> dict[str, str]:
        base = {
            "CallSid": self.call_sid,
            "AccountSid": self.hooks.account_sid,
            "From": self.from_,
            "To": self.to,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        base.update(extra)
        return base

    async def request(self, url: str, **extra: str) -> Twiml:
        response = await self.hooks.post(url, self.params(**extra))
        assert response.status_code == 200, (url, response.status_code, response.text)
        twiml = Twiml.parse(response.text)
        self.current = twiml
        self.heard.extend(twiml.said())
        return twiml

    async def start(self) -> Twiml:
        twiml = await self.request(self.base_url + "/twilio/voice/incoming", CallStatus="ringing")
        return await self.follow(twiml)

    async def follow(self, twiml: Twiml) -> Twiml:
        """Follow a bare <Redirect> (no Gather before it) as Twilio would."""
        while twiml.verbs() and twiml.verbs()[-1] == "Redirect" and "Gather" not in twiml.verbs():
            twiml = await self.request((twiml.first("Redirect").text or "").strip())
        return twiml

    async def press(self, digits: str) -> Twiml:
        """Key digits into the Gather currently waiting."""
        assert self.current is not None
        gather = self.current.first("Gather")
        assert gather is not None, f"no Gather in {self.current.verbs()}"
        return await self.follow(await self.request(gather.attrib["action"], Digits=digits))

    async def silence(self) -> Twiml:
        """Say nothing: the Gather times out and the next verb runs."""
        assert self.current is not None
        redirect = self.current.first("Redirect")
        assert redirect is not None, f"no fall-through in {self.current.verbs()}"
        return await self.follow(await self.request((redirect.text or "").strip()))

    async def wait_in_queue(self, queue_sid: str, position: int = 1) -> Twiml:
        """Twilio fetches the <Enqueue> wait URL."""
        assert self.current is not None
        enqueue = self.current.first("Enqueue")
        wait_url = enqueue.attrib["waitUrl"] if enqueue is not None else self.wait_url
        self.wait_url, self.queue_sid = wait_url, queue_sid
        return await self.request(
            wait_url, QueueSid=queue_sid, QueuePosition=str(position), QueueTime="10",
            AvgQueueTime="30", CurrentQueueSize=str(position),
        )

    wait_url: str = ""

    async def press_in_queue(self, digits: str) -> Twiml:
        assert self.current is not None
        gather = self.current.first("Gather")
        assert gather is not None
        return await self.request(
            gather.attrib["action"], Digits=digits, QueueSid=self.queue_sid
        )

    async def leave_queue(self, result: str, action: str) -> Twiml:
        return await self.follow(await self.request(action, QueueResult=result,
                                                    QueueSid=self.queue_sid))

    async def hang_up(self) -> httpx.Response:
        return await self.hooks.post(
            self.base_url + "/twilio/voice/status", self.params(CallStatus="completed")
        )
