"""The system instruction of a session: the owner's words, then where and when the speaker is,
so that "today", "tomorrow" and "here" mean something to the model."""

import datetime
import zoneinfo

from pispeaker.config import AssistantConfig


def session_instruction(
    instruction: str, assistant: AssistantConfig, now: datetime.datetime | None = None
) -> str:
    """``instruction`` with the place (if configured) and the local date and time at ``now``
    (default: this moment) in ``assistant.time_zone`` (default: the system's)."""
    local = _local(now or datetime.datetime.now(datetime.UTC), assistant.time_zone)
    zone = assistant.time_zone or local.tzname() or "local time"
    offset = local.isoformat(timespec="minutes")[-6:]  # +01:00
    when = (
        f"When this conversation started it was {local:%A} {local.day} {local:%B %Y}, "
        f"{local:%H:%M} ({zone}, UTC{offset}). Use it for today, tomorrow and the time of "
        "day; get_local_time tells the time later on."
    )
    where = f"The speaker is in {assistant.location}." if assistant.location else ""
    return "\n\n".join(part for part in (instruction.strip(), where, when) if part)


def _local(moment: datetime.datetime, time_zone: str) -> datetime.datetime:
    if time_zone:
        return moment.astimezone(zoneinfo.ZoneInfo(time_zone))
    return moment.astimezone()
