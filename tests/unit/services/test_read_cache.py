"""The services' read-cache namespaces and the flush writers outside a service use."""

from __future__ import annotations

from chariot_migrate.services.kit.read_cache import cache_namespace, flush_service_cache


def test_namespaces_are_per_service_and_per_dynamodb():
    prod = cache_namespace("asset-discovery", "p-")
    assert prod == "p-asset-discovery:cache"  # real AWS: no endpoint in the name
    one, other = (cache_namespace("asset-discovery", "", f"http://127.0.0.1:{port}") for port in (5000, 5001))
    assert one != other  # two moto stacks on one Redis never share entries
    assert cache_namespace("account", "", "http://127.0.0.1:5000") != one
    # no namespace's keys ("<ns>:…") fall under another's flush pattern ("<ns>:*")
    assert not one.startswith("asset-discovery:cache:")


def test_flushing_without_a_reachable_redis_says_so_and_does_not_fail():
    note = flush_service_cache("risk-assessment", "", None, env={"REDIS_URL": "redis://user:pw@127.0.0.1:1/0"})
    assert note.startswith("risk-assessment: cache not invalidated") and "pw" not in note
