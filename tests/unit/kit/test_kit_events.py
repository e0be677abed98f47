import asyncio

import pytest

from chariot_migrate.services.kit.context import correlation_id_var
from chariot_migrate.services.kit.events import (
    EVENT_TYPES,
    Event,
    InProcessBus,
    InvalidEventError,
    SchemaRegistry,
)

GOOD = {
    "asset.discovered": {"key": "#asset#example.com#1.2.3.4", "dns": "example.com", "name": "1.2.3.4"},
    "risk.assessed": {
        "key": "#risk#example.com#CVE-1",
        "dns": "example.com",
        "name": "CVE-1",
        "status": "OH",
    },
    "job.completed": {"key": "#job#example.com#x#subdomain", "capability": "subdomain", "status": "JP"},
    "user.action": {"actor": "alice@example.com", "action": "key.created", "role": "admin"},
    "integration.linked": {"member": "github", "linked": True},
    "config.changed": {"key": "#setting#theme", "name": "theme", "scope": "setting", "value": "dark"},
}
BAD = {
    "asset.discovered": {"key": "#risk#x", "dns": "x", "name": "y"},
    "risk.assessed": {"key": "#risk#x", "dns": "x", "name": "y", "status": "ZZ"},
    "job.completed": {"key": "#job#x", "capability": "c", "status": "done"},
    "user.action": {"actor": "a"},
    "integration.linked": {"member": "github", "linked": "yes"},
    "config.changed": {"key": "k", "name": "n", "scope": "global"},
}
REG = SchemaRegistry.default()


def test_registry_has_v1_of_every_event_type():
    assert REG.types() == sorted(EVENT_TYPES)
    for t in EVENT_TYPES:
        assert REG.versions(t) == [1]


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_good_events_validate_and_bad_ones_are_refused(type_):
    event = Event.new(type_, "acct@example.com", GOOD[type_])
    assert REG.validate(event) == event
    assert REG.validate(event.model_dump()) == event
    with pytest.raises(InvalidEventError, match=type_):
        REG.validate(Event.new(type_, "acct@example.com", BAD[type_]))


def test_envelope_rules():
    event = Event.new("asset.discovered", "a@x", GOOD["asset.discovered"]).model_dump()
    with pytest.raises(InvalidEventError, match="unknown event type"):
        REG.validate({**event, "type": "asset.vanished"})
    with pytest.raises(InvalidEventError, match=r"known versions: \[1\]"):
        REG.validate({**event, "version": 2})
    with pytest.raises(InvalidEventError):
        REG.validate({**event, "account": ""})
    with pytest.raises(InvalidEventError, match="occurred_at"):
        REG.validate({**event, "occurred_at": "yesterday"})
    with pytest.raises(InvalidEventError):
        REG.validate({**event, "extra": 1})


def test_event_new_takes_the_request_correlation_id():
    token = correlation_id_var.set("corr-7")
    try:
        e = Event.new("user.action", "a@x", GOOD["user.action"])
    finally:
        correlation_id_var.reset(token)
    assert e.correlation_id == "corr-7" and e.occurred_at.endswith("Z") and e.version == 1


def test_registry_accepts_new_versions_in_code():
    reg = SchemaRegistry.default()
    reg.register(
        "asset.discovered",
        2,
        {"type": "object", "required": ["data"], "properties": {"version": {"const": 2}}},
    )
    assert reg.versions("asset.discovered") == [1, 2]


async def test_in_process_bus_delivers_to_each_group_and_refuses_invalid_publish():
    bus = InProcessBus()
    got: dict[str, list[str]] = {"risk": [], "reporting": []}

    async def risk(e):
        got["risk"].append(e.id)

    async def reporting(e):
        got["reporting"].append(e.type)

    bus.subscribe("risk", ["asset.discovered"], risk)
    bus.subscribe("reporting", list(EVENT_TYPES), reporting)
    await bus.start()
    e1 = Event.new("asset.discovered", "a@x", GOOD["asset.discovered"])
    await bus.publish(e1)
    await bus.publish(Event.new("job.completed", "a@x", GOOD["job.completed"]))
    with pytest.raises(InvalidEventError):
        await bus.publish(Event.new("job.completed", "a@x", BAD["job.completed"]))
    await bus.drain()
    await bus.healthy()
    await bus.stop()
    assert got == {"risk": [e1.id], "reporting": ["asset.discovered", "job.completed"]}


async def test_in_process_bus_retries_then_dead_letters():
    bus = InProcessBus(max_deliveries=3, retry_delay=0)
    attempts: dict[str, int] = {}

    async def flaky(e):
        attempts[e.data["name"]] = attempts.get(e.data["name"], 0) + 1
        if e.data["name"] == "poison" or attempts[e.data["name"]] < 2:
            raise RuntimeError("transient")

    bus.subscribe("g", ["asset.discovered"], flaky)
    await bus.start()
    await bus.publish(Event.new("asset.discovered", "a@x", {"key": "#asset#a#ok", "dns": "a", "name": "ok"}))
    await bus.publish(
        Event.new("asset.discovered", "a@x", {"key": "#asset#a#poison", "dns": "a", "name": "poison"})
    )
    await bus.drain()
    await bus.stop()
    assert attempts == {"ok": 2, "poison": 3}
    assert len(bus.dead_letters) == 1 and "failed 3 times" in bus.dead_letters[0].reason


async def test_in_process_bus_stop_handles_what_is_queued_first():
    """Graceful shutdown: in-process events live nowhere else, so stop() handles the queue before
    it stops the workers (bounded: a stuck handler is cancelled after the grace period)."""
    bus = InProcessBus()
    handled: list[str] = []

    async def slow(e):
        await asyncio.sleep(0.01)  # why: a slow handler
        handled.append(e.data["name"])

    bus.subscribe("g", ["asset.discovered"], slow)
    await bus.start()
    for i in range(5):
        await bus.publish(Event.new("asset.discovered", "a@x", {"key": f"#asset#a#{i}", "dns": "a", "name": str(i)}))
    await bus.stop()
    assert handled == ["0", "1", "2", "3", "4"]

    stuck = InProcessBus()

    async def forever(e):
        await asyncio.Event().wait()

    stuck.subscribe("g", ["asset.discovered"], forever)
    await stuck.start()
    await stuck.publish(Event.new("asset.discovered", "a@x", GOOD["asset.discovered"]))
    await asyncio.wait_for(stuck.stop(grace_s=0.1), 2)
