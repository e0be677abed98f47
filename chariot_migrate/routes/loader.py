"""Load and validate routes.yaml; every error is one sentence naming file, line and field.

A routes file may also be an *overlay*: ``extends: <routes.yaml>`` plus new ``url``s for some
services (what ``chariot-migrate up --free-ports`` writes, so every tool that reads the stack's
routes file sees the ports the stack really uses). An overlay holds nothing else, so a problem in
the table is always reported against the file and line the user edited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

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


def _yaml(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    try:
        return yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        raise RoutesError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None


def parse_routes(text: str, filename: str = "routes.yaml", service_urls: Mapping[str, str] | None = None) -> RoutesFile:
    """``service_urls``: replace those services' instances with one URL each (an overlay's)."""
    node, data = _yaml(text, filename)
    if not isinstance(data, dict):
        raise RoutesError(f"{filename}:1: the file must be a mapping with version, legacy, services and routes")
    services = data.get("services")
    for name, url in (service_urls or {}).items():
        if isinstance(services, dict) and isinstance(services.get(name), dict):
            services[name] = {**services[name], "url": url, "urls": []}
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
    for name, svc in cfg.services.items():
        for peer in svc.shares_data_with:
            if peer not in cfg.services or peer == name:
                line = _line_of(node, ("services", name, "shares_data_with"))
                known = ", ".join(sorted(set(cfg.services) - {name})) or "none"
                raise RoutesError(f"{filename}:{line}: services.{name}.shares_data_with: unknown service {peer!r} "
                                  f"(known: {known})")
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

    checks: list[tuple[str, type[BaseModel], Any]] = [
        ("plan", Plan, cfg.plan), ("shadow", ShadowConfig, cfg.shadow), ("dual_write", DualWriteConfig, cfg.dual_write)]
    for section, model, data in checks:
        if data is None:
            continue
        try:
            parsed = model.model_validate(data)
            if isinstance(parsed, Plan):
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


class _OverlayService(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


class RoutesOverlay(BaseModel):
    """``extends``: the routes file amended (relative to the overlay); ``services``: new URLs."""

    model_config = ConfigDict(extra="forbid")
    extends: str
    services: dict[str, _OverlayService] = {}


_OVERLAY = re.compile(r"^extends:", re.M)  # a routes.yaml never has this key (unknown keys are errors)


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError as e:
        raise RoutesError(f"{p}: cannot read: {e.strerror}") from None


def _overlay(text: str, p: Path) -> RoutesOverlay | None:
    if not _OVERLAY.search(text):
        return None
    _, data = _yaml(text, str(p))
    try:
        return RoutesOverlay.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise RoutesError(f"{p}: overlay: {_fmt_loc(tuple(err['loc'])) or 'file'}: {err['msg']}") from None


def write_overlay(path: str | Path, extends: str | Path, service_urls: Mapping[str, str], note: str = "") -> Path:
    """Write an overlay atomically (a reader never sees half a file)."""
    p = Path(path)
    doc = {"extends": str(extends), "services": {n: {"url": u} for n, u in sorted(service_urls.items())}}
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text((f"# {note}\n" if note else "") + yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(p)
    return p


def routes_sources(path: str | Path) -> list[Path]:
    """The files a routes file is made of: itself, and the file it extends if it is an overlay."""
    p = Path(path)
    try:
        overlay = _overlay(p.read_text(), p)
    except (OSError, RoutesError):
        return [p]
    return [p] if overlay is None else [p, p.parent / overlay.extends]


def load_table(path: str | Path) -> RouteTable:
    """Read, validate and compile a routes file (or an overlay of one); raises RoutesError with a
    one-line message naming the file and line at fault."""
    p = Path(path)
    text = _read(p)
    overlay = _overlay(text, p)
    urls: dict[str, str] = {}
    if overlay is not None:
        urls = {name: svc.url for name, svc in overlay.services.items()}
        p = p.parent / overlay.extends
        text = _read(p)
        if _OVERLAY.search(text):
            raise RoutesError(f"{p}:1: extends: an overlay cannot extend another overlay")
    cfg = parse_routes(text, str(p), urls)
    return compile_routes(cfg, text, str(p))
