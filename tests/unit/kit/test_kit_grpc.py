"""The kit's gRPC pieces: stub generation (missing/stale → protoc; fresh → untouched), the
client's retry/breaker decisions, its deadline and metadata, and edge derivation (property)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.model import query as gq
from chariot_migrate.services.asset_discovery.grpc_messages import edges
from chariot_migrate.services.kit import grpc_codegen
from chariot_migrate.services.kit.breaker import BreakerConfig, CircuitOpenError
from chariot_migrate.services.kit.client import RetryPolicy
from chariot_migrate.services.kit.grpc_auth import metadata_value
from chariot_migrate.services.kit.grpc_client import GrpcPeer, outcome


def test_generate_when_missing_then_only_when_the_proto_is_newer(tmp_path: Path) -> None:
    messages, services = grpc_codegen.generate("asset_discovery", tmp_path)
    assert "AssetDiscoveryServiceStub" in services.read_text() and "DESCRIPTOR" in messages.read_text()
    proto = grpc_codegen.PROTO_DIR / "asset_discovery.proto"
    old = proto.stat().st_mtime - 100
    for path in (messages, services):
        os.utime(path, (old, old))
    assert grpc_codegen.is_stale(proto, (messages, services))
    grpc_codegen.generate("asset_discovery", tmp_path)
    assert not grpc_codegen.is_stale(proto, (messages, services))
    fresh = messages.stat().st_mtime
    grpc_codegen.generate("asset_discovery", tmp_path)  # up to date: not written again
    assert messages.stat().st_mtime == fresh
    assert grpc_codegen.is_stale(proto, (tmp_path / "absent_pb2.py",))


def test_generated_files_are_not_tracked() -> None:
    ignore = (Path(grpc_codegen.__file__).parents[3] / ".gitignore").read_text()
    assert "chariot_migrate/services/kit/proto/_generated/" in ignore.splitlines()


@pytest.mark.parametrize(("code", "attempt", "expected"), [
    (grpc.StatusCode.UNAVAILABLE, 0, "retry"), (grpc.StatusCode.DEADLINE_EXCEEDED, 1, "retry"),
    (grpc.StatusCode.UNAVAILABLE, 2, "fail"), (grpc.StatusCode.INTERNAL, 0, "fail"),
    (grpc.StatusCode.INVALID_ARGUMENT, 0, "raise"), (grpc.StatusCode.UNAUTHENTICATED, 0, "raise"),
    (grpc.StatusCode.NOT_FOUND, 0, "raise")])
def test_outcome(code: grpc.StatusCode, attempt: int, expected: str) -> None:
    assert outcome(code, attempt, 3) == expected


class Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Method:
    """A stub method that fails with the given codes, then answers."""

    def __init__(self, *codes: grpc.StatusCode) -> None:
        self.codes, self.calls = list(codes), []

    def __call__(self, request, *, timeout, metadata):
        self.calls.append((timeout, dict(metadata)))
        if self.codes:
            raise Failed(self.codes.pop(0))
        return "answer"


def peer(**kw) -> GrpcPeer:
    sleeps: list[float] = []
    p = GrpcPeer("127.0.0.1:1", peer="asset-discovery", token=lambda: "tok", deadline_s=1.5,
                 retry=RetryPolicy(attempts=3, base=0.1), sleep=sleeps.append, rng=lambda lo, hi: hi, **kw)
    p.sleeps = sleeps  # type: ignore[attr-defined]
    return p


def test_retries_unavailable_with_backoff_then_answers_with_deadline_and_metadata() -> None:
    p, method = peer(), Method(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert p.call(method, object(), "acct@example.com") == "answer"
    assert p.sleeps == [0.1, 0.2]  # type: ignore[attr-defined]
    timeout, metadata = method.calls[0]
    assert timeout == 1.5 and metadata["authorization"] == "Bearer tok" and metadata["account"] == "acct@example.com"
    assert "traceparent" in metadata
    assert p.breaker.state == "closed"


def test_a_client_error_is_raised_at_once_and_does_not_count_against_the_peer() -> None:
    p, method = peer(), Method(grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(grpc.RpcError):
        p.call(method, object(), "a")
    assert len(method.calls) == 1 and p.breaker.state == "closed"


def test_the_breaker_opens_after_failures_and_then_fails_fast() -> None:
    p = peer(breaker_config=BreakerConfig(failure_threshold=3, cooldown=60))
    method = Method(*[grpc.StatusCode.UNAVAILABLE] * 3)
    with pytest.raises(grpc.RpcError):
        p.call(method, object(), "a")
    assert p.breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        p.call(Method(), object(), "a")


def test_metadata_value_is_case_insensitive() -> None:
    assert metadata_value((("Authorization", b"Bearer x"), ("account", "a")), "authorization") == "Bearer x"
    assert metadata_value(None, "account") is None


DNS = st.sampled_from(["a.com", "b.com"])
NAMES = st.sampled_from(["a.com", "b.com", "1.2.3.4", "10.0.0.1"])


@st.composite
def entities(draw) -> list[dict]:
    assets = {}
    for dns, name, seed in draw(st.lists(st.tuples(DNS, NAMES, st.booleans()), max_size=6)):
        key = f"#asset#{dns}#{name}"
        assets[key] = {"key": key, "dns": dns, "name": name, "source": "seed" if seed else "self"}
    attrs = {}
    for i, owner in enumerate(draw(st.lists(st.sampled_from(sorted(assets) or ["#asset#x#x"]), max_size=4))):
        key = f"#attribute#port#{i}#{owner}"
        attrs[key] = {"key": key, "source": owner, "name": "port", "value": str(i)}
    return [*assets.values(), *attrs.values()]


@settings(max_examples=60, deadline=None)
@given(entities())
def test_edges_are_exactly_the_pairs_post_my_relates(nodes: list[dict]) -> None:
    expected = sorted((s["key"], label, d["key"]) for s in nodes for d in nodes
                      for label in ("HAS_ATTRIBUTE", "DISCOVERED") if gq.related(label, s, d))
    assert edges(nodes) == expected
