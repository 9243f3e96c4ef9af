"""The routing parameters of a line, stored in Redis so every process agrees."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RoutingConfig(BaseModel):
    """Times in seconds.

    Every ring opens at once (widening 0/0/0); a freed volunteer takes the closest ring's task
    first and leaves a task to a closer volunteer on duty while other tasks wait, each for up
    to 120 s: the policy study (bench/README.md) found that any widening threshold makes
    callers wait while volunteers elsewhere idle, and that these two work-conserving choices
    answer locally about a third of the calls that could be, at no measurable cost in ASA.
    """

    widen_group_s: float = Field(0, ge=0, description="wait before the group ring")
    widen_region_s: float = Field(0, ge=0, description="wait before the région ring")
    widen_national_s: float = Field(0, ge=0, description="wait before the national ring")
    local_first_max_wait_s: float = Field(
        120,
        ge=0,
        description="a freed volunteer takes the closest ring's task first, unless a task of "
        "the same priority has waited this long (0: always the longest waiting)",
    )
    leave_to_closer: bool = Field(
        True,
        description="a freed volunteer leaves a task to a volunteer of a closer ring on duty "
        "while other tasks wait (until it has waited local_first_max_wait_s)",
    )
    skill_relax_s: float = Field(60, ge=0, description="wait before a skill is no longer required")
    ring_s: float = Field(20, gt=0, description="how long an offer rings")
    max_no_answer: int = Field(3, ge=1, description="missed offers in a row before a pause")
    no_answer_delay_s: float = Field(5, ge=0, description="pause in offers after a miss")
    reject_delay_s: float = Field(5, ge=0, description="pause in offers after a decline")
    wrapup_s: float = Field(120, ge=0, description="wrap-up time before it ends by itself")
    resume_window_s: float = Field(300, ge=0, description="abandon-resume window")
    recent_caller_s: float = Field(
        7 * 24 * 3600, ge=0, description="how long a caller's last volunteer is remembered"
    )
    known_volunteer_s: float = Field(20, ge=0, description="the known volunteer's turn (0: none)")
    transfer_wait_s: float = Field(60, ge=0, description="a named colleague's turn on transfer")
    service_level_s: float = Field(60, gt=0, description="service level threshold T")
    short_abandon_s: float = Field(
        5, ge=0, description="abandons shorter than this are excluded from SL"
    )
    ended_ttl_s: float = Field(48 * 3600, gt=0, description="how long ended tasks stay in Redis")
    stats_ttl_s: float = Field(9 * 24 * 3600, gt=0, description="how long live counters stay")
    stream_maxlen: int = Field(200_000, gt=0, description="approximate length of the event stream")

    def to_redis(self) -> dict[str, str]:
        """Field names as the Lua scripts read them: milliseconds, suffix _ms."""
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if name.endswith("_s"):
                out[name[:-2] + "_ms"] = str(int(round(value * 1000)))
            elif isinstance(value, bool):
                out[name] = "1" if value else "0"
            else:
                out[name] = str(value)
        return out

    @classmethod
    def from_redis(cls, h: dict[str, str]) -> RoutingConfig:
        values: dict[str, float | bool] = {}
        for name, field in cls.model_fields.items():
            if name.endswith("_s") and name[:-2] + "_ms" in h:
                values[name] = int(h[name[:-2] + "_ms"]) / 1000
            elif name in h and field.annotation is bool:
                values[name] = h[name] == "1"
            elif name in h:
                values[name] = float(h[name])
        return cls(**values)
