"""The GraphQL layer with an in-memory `fetch` (the proxy's sub-request in production): batching
(never N+1), limits, introspection off by default, errors that keep the REST reason."""

import json

import pytest

from chariot_migrate.gateway.schema import Endpoint, build_schema, sdl

ASSETS = [{"key": f"#asset#a{i}.com#a{i}.com", "dns": f"a{i}.com", "name": f"a{i}.com", "status": "A"} for i in range(5)]
RISKS = [{"key": "#risk#a1.com#CVE-1", "dns": "a1.com", "name": "CVE-1", "status": "TH"},
         {"key": "#risk#a3.com#CVE-2", "dns": "a3.com", "name": "CVE-2", "status": "OL"}]
ATTRS = [{"key": "#attribute#port#443#asset#a1.com#a1.com", "name": "port", "value": "443", "source": "#asset#a1.com#a1.com"}]


class FakeApi:
    def __init__(self):
        self.calls: list[tuple[str, str, dict, object]] = []

    async def __call__(self, method, path, query, body):
        self.calls.append((method, path, query, body))
        key = query.get("key", "")
        if (method, path) == ("GET", "/my"):
            for kind, rows in (("asset", ASSETS), ("risk", RISKS), ("attribute", ATTRS)):
                if key.startswith(f"#{kind}#"):
                    return 200, {f"{kind}s": [r for r in rows if r["key"].startswith(key)]}
            return 200, {}
        if (method, path) == ("PUT", "/setting"):
            return 200, {"key": f"#setting#{body['name']}", **body}
        if (method, path) == ("PUT", "/risk"):
            return 400, {"message": "a manually added risk must use a triage status"}
        return 404, {"error": "no such route"}


async def run(query, *, read_only=False, variables=None, endpoint=None):
    api = FakeApi()
    status, doc = await (endpoint or Endpoint()).execute({"query": query, "variables": variables}, api,
                                                          read_only=read_only)
    return status, doc, api


async def test_cross_service_fields_are_batched_never_n_plus_one():
    status, doc, api = await run("{ assets { items { key risks { key status } attributes { name value } } offset } }")
    assert status == 200 and "errors" not in doc, doc
    items = doc["data"]["assets"]["items"]
    assert [i["key"] for i in items] == [a["key"] for a in ASSETS]
    assert {i["key"]: [r["key"] for r in i["risks"]] for i in items if i["risks"]} == {
        "#asset#a1.com#a1.com": ["#risk#a1.com#CVE-1"], "#asset#a3.com#a3.com": ["#risk#a3.com#CVE-2"]}
    assert items[1]["attributes"] == [{"name": "port", "value": "443"}]
    # One call for the assets, one listing of risks, one of attributes: not one per asset.
    assert [(c[1], c[2]["key"]) for c in api.calls] == [("/my", "#asset#"), ("/my", "#risk#"), ("/my", "#attribute#")]


async def test_one_asset_asks_only_for_its_own_risks():
    _, doc, api = await run('{ assets(key: "a3.com") { items { key risks { name } } } }')
    assert doc["data"]["assets"]["items"][0]["risks"] == [{"name": "CVE-2"}]
    assert [c[2]["key"] for c in api.calls] == ["#asset#a3.com", "#risk#a3.com"]


async def test_mutations_go_to_the_rest_routes_and_keep_their_reasons():
    status, doc, api = await run('mutation ($v: JSON!) { addSetting(name: "theme", value: $v) { key name value } }',
                                 variables={"v": {"dark": True}})
    assert status == 200 and doc["data"]["addSetting"] == {"key": "#setting#theme", "name": "theme", "value": {"dark": True}}
    assert api.calls == [("PUT", "/setting", {}, {"name": "theme", "value": {"dark": True}})]
    status, doc, _ = await run('mutation { addRisk(asset: "#asset#a1.com#a1.com", name: "X", status: "OH") { key } }')
    assert status == 200 and doc["data"] is None
    (err,) = doc["errors"]
    assert "triage status" in err["message"] and err["extensions"] == {"status": 400}


async def test_mutations_are_refused_on_get():
    status, doc, api = await run('mutation { deleteSetting(name: "x") }', read_only=True)
    assert status == 405 and api.calls == []


@pytest.mark.parametrize("query,why", [
    ("{ assets { items { risks { key } risks2: risks { key } } } " + " ".join(f"a{i}: risks {{ items {{ key }} }}" for i in range(16)) + " }", "aliases"),
    ("{ assets { items { key } } ", "Syntax Error"),
    ("{ nope }", "Cannot query field"),
])
async def test_bad_and_oversized_queries_are_400_before_any_call(query, why):
    status, doc, api = await run(query)
    assert status == 400 and api.calls == [] and why.lower() in json.dumps(doc).lower(), doc


async def test_depth_is_limited():
    schema = build_schema()
    ext = [e for e in schema.extensions if type(e).__name__ == "QueryDepthLimiter"]
    assert ext, "the depth limiter is installed"
    deep = "{ assets { items { risks { key } } } }"  # depth 4: fine
    assert (await run(deep))[0] == 200


async def test_introspection_is_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv("CHARIOT_MIGRATE_GRAPHQL_INTROSPECTION", raising=False)
    status, doc, _ = await run("{ __schema { types { name } } }")
    assert status == 400 and "introspection" in json.dumps(doc).lower()
    status, doc, _ = await run("{ __schema { queryType { name } } }", endpoint=Endpoint(build_schema(introspection=True)))
    assert status == 200 and doc["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_bad_requests_are_400_with_a_reason():
    api = FakeApi()
    for doc in ([], {"query": 3}, {"query": "{ assets { offset } }", "variables": []}):
        status, out = await Endpoint().execute(doc, api, read_only=False)
        assert status == 400 and out["errors"][0]["message"]


def test_the_schema_has_a_root_field_per_chariot_list_with_the_api_field_names():
    s = sdl()
    for field in ("assets(", "risks(", "attributes(", "jobs(", "seeds(", "accounts:", "settings(", "capabilities:",
                  "integrations:", "notifications:", "reports("):
        assert f"  {field}" in s, field
    for t in ("Asset", "Risk", "Attribute", "Job", "Capability", "Account", "Integration", "Notification", "Report",
              "Setting"):
        assert f"type {t} {{" in s, t
    assert "  addAsset(dns: String!, name: String!" in s and "  addJob(" in s
