"""Capability schedules (pure rules shared by legacy's job function and the capabilities service):
validation, next execution, due check, pause/resume, and the request checks both sides answer alike.

Shape per the public record (reference §5.3): ``{scheduleId, key: #capability_schedule#<id>,
capabilityName, clientId?, targetKey, config, weeklySchedule: {monday: {enabled, time: "HH:MM"},
…}, startDate, endDate?, status: active|paused|expired, nextExecution, lastExecution, createdAt,
updatedAt}``. Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import capabilities as caps

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FMT = "%Y-%m-%dT%H:%M:%SZ"
PREFIX = "#capability_schedule#"
ACTIONS = ("pause", "resume")


class DaySlot(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: bool = False
    time: str = "00:00"

    @field_validator("time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            datetime.strptime(v, "%H:%M")
        except ValueError:
            raise ValueError(f"time must be HH:MM (24 h, UTC), got {v!r}") from None
        return v


def _check_week(v: dict[str, DaySlot] | None) -> dict[str, DaySlot] | None:
    if v is None:
        return v
    bad = sorted(set(v) - set(DAYS))
    if bad:
        raise ValueError(f"unknown day {bad[0]!r} (want one of {', '.join(DAYS)})")
    if not any(s.enabled for s in v.values()):
        raise ValueError("enable at least one day")
    return v


def _check_date(v: str | None) -> str | None:
    if v is None or v == "":
        return None
    parse_time(v)
    return v


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    capability_name: str = Field(alias="capabilityName", min_length=1)
    target_key: str = Field(alias="targetKey", min_length=1)
    weekly_schedule: dict[str, DaySlot] = Field(alias="weeklySchedule")
    start_date: str = Field(alias="startDate")
    end_date: str | None = Field(None, alias="endDate")
    config: dict[str, Any] = Field(default_factory=dict)
    client_id: str | None = Field(None, alias="clientId")

    @field_validator("capability_name")
    @classmethod
    def _known(cls, v: str) -> str:
        if caps.unknown([v]):
            raise ValueError(f"unknown capability: {v}")
        return v

    @field_validator("target_key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not v.startswith("#"):
            raise ValueError("targetKey must be an entity key starting with '#'")
        return v

    _week = field_validator("weekly_schedule")(classmethod(lambda cls, v: _check_week(v)))
    _start = field_validator("start_date")(classmethod(lambda cls, v: _check_date(v) or _missing("startDate")))
    _end = field_validator("end_date")(classmethod(lambda cls, v: _check_date(v)))


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    weekly_schedule: dict[str, DaySlot] | None = Field(None, alias="weeklySchedule")
    start_date: str | None = Field(None, alias="startDate")
    end_date: str | None = Field(None, alias="endDate")
    config: dict[str, Any] | None = None

    _week = field_validator("weekly_schedule")(classmethod(lambda cls, v: _check_week(v)))
    _start = field_validator("start_date")(classmethod(lambda cls, v: _check_date(v)))
    _end = field_validator("end_date")(classmethod(lambda cls, v: _check_date(v)))


def _missing(name: str) -> str:
    raise ValueError(f"{name} is required")


def parse_time(v: str) -> datetime:
    for fmt in (FMT, "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            t = datetime.strptime(v, fmt)
            return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        except ValueError:
            continue
    raise ValueError(f"dates must be RFC 3339 (YYYY-MM-DDTHH:MM:SSZ) or YYYY-MM-DD, got {v!r}")


def fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime(FMT)


def next_execution(weekly: dict[str, Any], after: datetime, start: datetime | None = None,
                   end: datetime | None = None) -> datetime | None:
    """The first enabled weekly slot strictly after ``after`` (and not before ``start``);
    None when there is none before ``end`` (the schedule has expired)."""
    floor = max(after, start - timedelta(seconds=1)) if start else after
    base = floor.replace(second=0, microsecond=0)
    best: datetime | None = None
    for offset in range(8):
        day = base + timedelta(days=offset)
        slot = weekly.get(DAYS[day.weekday()])
        slot = slot.model_dump() if isinstance(slot, DaySlot) else slot
        if not slot or not slot.get("enabled"):
            continue
        hh, mm = (int(x) for x in str(slot.get("time", "00:00")).split(":"))
        candidate = day.replace(hour=hh, minute=mm)
        if candidate > floor and (best is None or candidate < best):
            best = candidate
    if best is not None and end is not None and best > end:
        return None
    return best


def build(body: ScheduleCreate, account: str, schedule_id: str, now: str) -> dict[str, Any]:
    week = {d: s.model_dump() for d, s in body.weekly_schedule.items()}
    item: dict[str, Any] = {
        "username": account, "key": schedule_key(schedule_id), "scheduleId": schedule_id,
        "capabilityName": body.capability_name, "targetKey": body.target_key,
        "config": {str(k): str(v) for k, v in body.config.items()}, "weeklySchedule": week,
        "startDate": body.start_date, "status": "active", "lastExecution": "",
        "createdAt": now, "updatedAt": now,
    }
    if body.end_date:
        item["endDate"] = body.end_date
    if body.client_id:
        item["clientId"] = body.client_id
    return with_next(item, parse_time(now))


def with_next(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Recompute ``nextExecution`` (and expire the schedule when no slot is left)."""
    item = dict(item)
    start = parse_time(item["startDate"]) if item.get("startDate") else None
    end = parse_time(item["endDate"]) if item.get("endDate") else None
    nxt = next_execution(item.get("weeklySchedule") or {}, now, start, end)
    item["nextExecution"] = fmt(nxt) if nxt else ""
    if nxt is None and item.get("status") == "active":
        item["status"] = "expired"
    return item


def apply_update(item: dict[str, Any], body: ScheduleUpdate, now: str) -> dict[str, Any]:
    item = dict(item)
    if body.weekly_schedule is not None:
        item["weeklySchedule"] = {d: s.model_dump() for d, s in body.weekly_schedule.items()}
    if body.start_date is not None:
        item["startDate"] = body.start_date
    if body.end_date is not None:
        item["endDate"] = body.end_date
    if body.config is not None:
        item["config"] = {str(k): str(v) for k, v in body.config.items()}
    if item.get("status") == "expired":
        item["status"] = "active"  # new dates/days may revive it; with_next expires it again if not
    item["updatedAt"] = now
    return with_next(item, parse_time(now))


def transition(item: dict[str, Any], action: str, now: str) -> dict[str, Any]:
    """pause: active → paused; resume: paused → active (next slot recomputed)."""
    status = item.get("status")
    if action == "pause":
        if status != "active":
            raise ValueError(f"only an active schedule can be paused (this one is {status})")
        return dict(item) | {"status": "paused", "updatedAt": now}
    if action == "resume":
        if status != "paused":
            raise ValueError(f"only a paused schedule can be resumed (this one is {status})")
        return with_next(dict(item) | {"status": "active", "updatedAt": now}, parse_time(now))
    raise ValueError(f"unknown schedule action {action!r} (want pause or resume)")


def is_due(item: dict[str, Any], now: datetime) -> bool:
    nxt = item.get("nextExecution")
    return item.get("status") == "active" and isinstance(nxt, str) and bool(nxt) and parse_time(nxt) <= now


def after_run(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    return with_next(dict(item) | {"lastExecution": fmt(now), "updatedAt": fmt(now)}, now)


def schedule_key(schedule_id: str) -> str:
    return PREFIX + schedule_id


def id_problem(schedule_id: str) -> str | None:
    """Why a ``{scheduleId}`` path parameter cannot name a schedule (400), else None."""
    return "scheduleId must not contain '#'" if "#" in schedule_id else None


def action_problem(action: str) -> str | None:
    """Why a ``PATCH …/{action}`` is refused (400), else None."""
    return None if action in ACTIONS else f"unknown schedule action {action!r} (want pause or resume)"


def not_found_message(schedule_id: str) -> str:
    return f"schedule {schedule_id} not found"
