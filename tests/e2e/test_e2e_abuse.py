"""Abuse suite, Chariot part (issue 15, items 7, 8, 9, 12, 15): the whole stack (`up`, all eight
services, legacy Lambdas on moto), one account on legacy and one pinned to the new side for every
service, the same hostile requests sent for both. Each answer must be a 4xx with a reason — never a
5xx — and identical on both sides (status and normalised body), so a hostile client cannot tell
which side it reached. The edge-only items run against echo upstreams in
tests/integration/proxy/test_proxy_abuse.py.
"""

from __future__ import annotations

import httpx
import pytest
import test_e2e_contract as contract
from guard_harness import parallel
from test_e2e_contract import LEGACY_USER, NEW_USER, Step, run_case

# The contract suite's stack (all services, NEW_USER pinned to new everywhere) and its two clients,
# one instance for this module.
stack = contract.stack
clients = contract.clients

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DEEP = "[" * 10_000 + "]" * 10_000  # spliced into a JSON body as raw text (see _raw)
LONG = "n" * 1100  # over DynamoDB's 1024-byte sort key once it is part of a key
A = "#asset#{dns}#{dns}"


def S(method: str, path: str, body=None, **query: str) -> Step:  # noqa: N802 — reads like a table
    return Step(method, path, tuple(query.items()), body)


# Each case: the steps, and the status its last (hostile) step must get; None: any status below 500 —
# what matters there is that both sides agree.
CASES: dict[str, tuple[list[Step], int | None]] = {
    # 7: escaped '?' and '#' are data in one segment, on both sides
    "escaped-question-mark-member": ([S("POST", "/account/x%3F@{dns}", {"role": "analyst"}),
                                      S("DELETE", "/account/x%3F@{dns}")], None),
    "escaped-hash-in-hook-pin": ([Step("PUT", "/hook/{me64}/pin%23zz", body={"dns": "{dns}"}, auth=False)], None),
    # 9: nesting beyond the bound, in the proxy's body predicate and in each side's parser
    "deep-json-post-my": ([S("POST", "/my", {"node": "<DEEP>"})], 400),
    "deep-json-put-risk": ([S("PUT", "/risk", {"key": A, "name": "x", "status": "TH", "extra": "<DEEP>"})], 400),
    "deep-json-put-asset": ([S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}", "x": "<DEEP>"})], 400),
    "deep-json-bulk-asset": ([S("POST", "/bulk/asset", {"action": "add", "items": "<DEEP>"})], 400),
    "deep-offset": ([S("GET", "/my", key="#account#", offset=DEEP)], 400),
    # 12: key parts over DynamoDB's limits, on every entity that builds a key from input
    "long-asset-name": ([S("PUT", "/asset", {"group": "{dns}", "identifier": LONG})], 400),
    "long-asset-group": ([S("PUT", "/asset", {"group": LONG + ".com", "identifier": "{dns}"})], 400),
    "long-asset-key-delete": ([S("DELETE", "/asset", {"key": "#asset#{dns}#" + LONG})], 400),
    "long-asset-key-update": ([S("PUT", "/asset", {"key": "#asset#{dns}#" + LONG, "status": "F"})], 400),
    "long-risk-name": ([S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                        S("PUT", "/risk", {"key": A, "name": LONG, "status": "TH"})], 400),
    "long-attribute-value": ([S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                              S("PUT", "/attribute", {"key": A, "name": "port", "value": LONG})], 400),
    "long-preseed": ([S("POST", "/preseed", {"type": "whois+company", "title": LONG, "value": "v"})], 400),
    "long-setting": ([S("PUT", "/setting", {"name": LONG, "value": "v"})], 400),
    "long-search-key": ([S("GET", "/my", key="#account#" + LONG)], None),
    # 15: a known path, a method no route takes
    "post-to-put-only-hook": ([Step("POST", "/hook/{me64}/pin", body={"dns": "{dns}"}, auth=False)], 405),
    "get-on-risk": ([S("GET", "/risk")], 405),
}


class _DeepBody(httpx.Client):
    """Sends the JSON body with ``"<DEEP>"`` replaced by 10,000 raw levels of nesting (no JSON
    encoder would produce it) and paths exactly as written."""

    def request(self, method, url, **kw):  # type: ignore[override]
        if "json" in kw and kw["json"] is not None:
            import json

            kw["content"] = json.dumps(kw.pop("json")).replace('"<DEEP>"', DEEP).encode()
            kw.setdefault("headers", {})["content-type"] = "application/json"
        return super().request(method, url, **kw)


def _raw(client: httpx.Client) -> httpx.Client:
    return _DeepBody(base_url=client.base_url, timeout=60, headers=client.headers)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_requests_get_the_same_4xx_on_both_sides(case, clients):
    steps, want = CASES[case]
    legacy_c, new_c = _raw(clients["legacy"]), _raw(clients["new"])
    try:
        legacy, new = parallel(lambda: run_case(legacy_c, LEGACY_USER, case, steps),
                               lambda: run_case(new_c, NEW_USER, case, steps))
    finally:
        legacy_c.close()
        new_c.close()
    strip = lambda rows: [(what, status, doc) for what, _, status, doc in rows]  # noqa: E731
    assert strip(new) == strip(legacy)
    assert all(status < 500 for _, _, status, _ in legacy), legacy
    _, _, status, doc = legacy[-1]
    if want is not None:
        assert status == want and isinstance(doc, dict) and (doc.get("message") or doc.get("error")), legacy


def test_repeated_identity_headers_are_refused_at_the_edge(stack, clients):
    token = clients["legacy"].headers["authorization"]
    for name, values in [("account", [LEGACY_USER, NEW_USER]), ("authorization", [token, "Bearer forged"])]:
        headers = [("authorization", token)] if name != "authorization" else []
        headers += [(name, v) for v in values]
        r = httpx.put(f"{stack.api}/asset", headers=headers, json={"group": "a.com", "identifier": "a.com"})
        assert r.status_code == 400 and name in r.json()["error"], r.text


def test_no_side_logged_a_recursion_error(stack):
    """Runs last: the deep bodies above never reached a recursive parser anywhere in the stack."""
    logs = [stack.log, *stack.state_dir.rglob("*.log")]
    text = "".join(p.read_text(errors="replace") for p in logs if p.is_file())
    assert "RecursionError" not in text, stack.log_tail(80)
