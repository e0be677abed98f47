"""Every ```yaml block of the READMEs is a tested example (issue 15 item 16).

A block with a top-level ``version`` is a whole routes file: it must pass the loader as it is. Any
other block is a fragment of routes.yaml: it is deep-merged into the repository's routes.yaml (the
keys it sets replace those there) and the result must pass the same loader, which validates every
section through its own model (services, defaults, auth, plan, shadow, dual_write, …) and refuses
unknown keys — so a misspelt field such as ``breaker: {failures: 5}`` fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import deep_merge

from chariot_migrate.routes.loader import RoutesError, compile_routes, parse_routes

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", ROOT / "deploy" / "README.md"]
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)


def yaml_blocks() -> list[tuple[str, str]]:
    out = []
    for readme in READMES:
        text = readme.read_text()
        for m in _BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((f"{readme.relative_to(ROOT)}:{line}", m.group(1)))
    return out


def as_routes_file(snippet: str) -> str:
    doc = yaml.safe_load(snippet)
    assert isinstance(doc, dict), "a README yaml block must be a mapping (a routes file or a fragment of one)"
    if "version" in doc:
        return snippet
    return yaml.safe_dump(deep_merge(yaml.safe_load((ROOT / "routes.yaml").read_text()), doc), sort_keys=False)


def test_the_readmes_have_yaml_examples():
    assert len(yaml_blocks()) >= 4


@pytest.mark.parametrize(("where", "snippet"), yaml_blocks(), ids=[w for w, _ in yaml_blocks()])
def test_every_readme_yaml_block_validates(where, snippet):
    text = as_routes_file(snippet)
    try:
        compile_routes(parse_routes(text, where), text, where)
    except RoutesError as e:
        pytest.fail(f"{where}: the README example does not validate: {e}")


def test_a_misspelt_field_in_a_fragment_is_caught():
    bad = "services:\n  account:\n    breaker: {failures: 5, cooldown_s: 5}\n"
    with pytest.raises(RoutesError, match="unknown key 'failures'"):
        text = as_routes_file(bad)
        compile_routes(parse_routes(text), text)
