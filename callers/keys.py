"""Redis keys of the callers package (next to the engine's, same hash tag per line)."""

from __future__ import annotations


class CallerKeys:
    """Key names for one line; all share the line's hash tag so they live in one slot."""

    def __init__(self, line: str = "main") -> None:
        self.base = f"perm:callers:{{{line}}}:"

    def call(self, call_sid: str) -> str:
        """hash: one phone call's progress through the menus (by Twilio CallSid)."""
        return f"{self.base}call:{call_sid}"

    def task(self, task_id: str) -> str:
        """hash: what callers/ knows of an engine task (call sid, conference, sealed number)."""
        return f"{self.base}task:{task_id}"

    def leg(self, leg_id: str) -> str:
        """hash: one outbound call to a volunteer (task, volunteer, purpose, call sid)."""
        return f"{self.base}leg:{leg_id}"

    def task_legs(self, task_id: str) -> str:
        """hash: volunteer id -> leg id of a task's volunteer calls."""
        return f"{self.base}tlegs:{task_id}"

    def caller_place(self, task_id: str) -> str:
        """lock: held while the bridge moves a task's caller (queue or conference)."""
        return f"{self.base}place:{task_id}"

    def answers(self, caller_key: str) -> str:
        """hash: a caller's last menu answers (topic, département), kept for resuming."""
        return f"{self.base}answers:{caller_key}"

    def chat(self, task_id: str) -> str:
        """hash: a chat's public details (topic, département, first name, state)."""
        return f"{self.base}chat:{task_id}"

    def room(self, task_id: str) -> str:
        """stream: the messages of one chat conversation (see callers.chat.room)."""
        return f"{self.base}room:{task_id}"

    def room_sent(self, task_id: str) -> str:
        """hash: sender's message id -> stream id, for a conversation's messages sent with one."""
        return f"{self.base}roomsent:{task_id}"

    def rate(self, scope: str, ident: str, window: str) -> str:
        """string counter: requests of one client within one time window."""
        return f"{self.base}rl:{scope}:{ident}:{window}"

    def once(self, what: str) -> str:
        """string: a marker that an effect already happened (idempotent webhooks)."""
        return f"{self.base}once:{what}"

    @property
    def bridge_group(self) -> str:
        return "callers-bridge"
