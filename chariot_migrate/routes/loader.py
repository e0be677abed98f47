"""Load and validate routes.yaml; every error is one sentence naming file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .matcher import AmbiguousRoutes, RouteTable
from .models import RoutesFile


class RoutesError(ValueError):
    """A routes.yaml problem, already phrased for a human: ``file:line: field: problem``."""


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree; return the deepest line."""
    line = node.start_mark.line + 1 if node is not None else None
    for step in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(step):
                    # The key's own line for leaf keys (e.g. unknown key), value's line otherwise.
                    nxt, line = v, k.start_mark.line + 1
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
        if node is None:
            break
    return line


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        elif not str(step).startswith(("function-", "str", "dict[", "tagged-union")):
            out += ("." if out else "") + str(step)
    return out


def parse_routes(text: str, filename: str = "routes.yaml") -> RoutesFile:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        raise RoutesError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise RoutesError(f"{filename}:1: the file must be a mapping with version, legacy, services and routes")
    try:
        cfg = RoutesFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        line = _line_of(node, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        more = f" (and {len(e.errors()) - 1} more problem(s))" if len(e.errors()) > 1 else ""
        raise RoutesError(f"{filename}:{line}: {_fmt_loc(loc) or 'file'}: {msg}{more}") from None
    _validate_sections(cfg, node, filename)
    for i, r in enumerate(cfg.routes):
        if r.service not in cfg.services:
            known = ", ".join(sorted(cfg.services)) or "none"
            line = _line_of(node, ("routes", i, "service"))
            raise RoutesError(f"{filename}:{line}: routes[{i}].service: unknown service {r.service!r} (known: {known})")
    return cfg


def _validate_sections(cfg: RoutesFile, node: yaml.Node | None, filename: str) -> None:
    """The plan and shadow sections are owned by their packages; validate them here so a bad
    file is refused as a whole, with the line of the problem."""
    from ..dual_write.config import DualWriteConfig
    from ..rollout.phase_report import Prices
    from ..rollout.plan import Plan
    from ..shadow.config import ShadowConfig

    checks = [("plan", Plan, cfg.plan), ("shadow", ShadowConfig, cfg.shadow),
              ("dual_write", DualWriteConfig, cfg.dual_write)]
    for section, model, data in checks:
        if data is None:
            continue
        try:
            parsed = model.model_validate(data)
            if section == "plan":
                Prices.model_validate(parsed.costs)
                unknown = sorted(set(parsed.services) - set(cfg.services))
                if unknown:
                    raise RoutesError(f"{filename}:{_line_of(node, ('plan', 'services'))}: plan.services: "
                                      f"unknown service {unknown[0]!r}")
        except ValidationError as e:
            err = e.errors()[0]
            loc = (section, *err["loc"])
            msg = f"unknown key {loc[-1]!r}" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            raise RoutesError(f"{filename}:{_line_of(node, loc)}: {_fmt_loc(loc)}: {msg}") from None


def compile_routes(cfg: RoutesFile, text: str = "", filename: str = "routes.yaml") -> RouteTable:
    try:
        return RouteTable(cfg)
    except AmbiguousRoutes as e:
        node = yaml.compose(text) if text else None
        line = _line_of(node, ("routes", e.second)) if node else None
        first_line = _line_of(node, ("routes", e.first)) if node else None
        raise RoutesError(f"{filename}:{line}: {e} see line {first_line}") from None
    except (ValueError, KeyError) as e:
        raise RoutesError(f"{filename}: {e}") from None


def load_table(path: str | Path) -> RouteTable:
    """Read, validate and compile a routes file; raises RoutesError with a one-line message."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise RoutesError(f"{p}: cannot read: {e.strerror}") from None
    cfg = parse_routes(text, str(p))
    return compile_routes(cfg, text, str(p))
