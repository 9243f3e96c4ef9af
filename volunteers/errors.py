"""Refusals of the volunteers package: a stable code and a French message to show as is."""

from __future__ import annotations


class VolunteerError(Exception):
    """A request refused with nothing changed; ``message`` is for the person, in French."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
