"""`routes export`: the current split as another router's configuration (Istio, Envoy, ALB).

For teams that want their mesh or load balancer to carry the split once the toolkit's proxy has
done its job (or for review). Pure builders over plain data — route list, live splits — and one
Typer command at the bottom that reads routes.yaml and the state store.

What cannot be carried over is said in the output's header instead of silently dropped: weights
split *per request* (no per-account stickiness, no pins), mirrors copy per request and are never
compared, and route conditions the target cannot express (JSON body fields, negated or non-RE2
regexes, conditions on path parameters; for ALB any regex) make that route go to legacy there.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import typer
import yaml

from ..routes.matcher import INTERNAL_PREFIX, VERSION_PREFIX
from ..routes.models import SAFE_METHODS, RoutesFile
from .common import RoutesOpt, StateOpt, console, esc, friendly_errors, routes_path

FORMATS = ("istio", "envoy", "alb")
STICKINESS_NOTE = ("Weights split each REQUEST, not each account: the chariot-migrate proxy keeps an account on one "
                   "side for all its requests (sticky, monotonic) and honours pins; these weights cannot, so one "
                   "account's requests will alternate between legacy and new.")
MIRROR_NOTE = ("Mirrors copy safe requests per request (not per account cohort) to one side and discard the copy's "
               "answer: no comparison happens there; keep the chariot-migrate proxy where you need shadow diffs.")
_NOT_RE2 = re.compile(r"\(\?[=!<]|\\[1-9]|\(\?P=")  # lookarounds and back-references


@dataclass(frozen=True)
class Split:
    """Live split of one service (from the state store)."""

    service: str
    percent_bp: int = 0  # 0.01 % units of traffic to the new side
    shadow_bp: int = 0
    pins: int = 0


@dataclass(frozen=True)
class ExportRoute:
    service: str
    route_id: str
    template: str
    methods: tuple[str, ...]
    query: dict[str, str] = field(default_factory=dict)  # name -> full-match RE2 regex
    header: dict[str, str] = field(default_factory=dict)
    unexpressible: str | None = None  # why no router here can carry this route's conditions
    versions: tuple[str, ...] = ("v1",)
    response_headers: tuple[tuple[str, str], ...] = ()  # Deprecation / Sunset / Link


@dataclass(frozen=True)
class EdgePath:
    """One prefix a route answers under at the edge, and what reaches the upstream."""

    prefix: str  # matched: stage prefix (v1 as today), /api/v1 or /api/vN
    rewrite_to: str | None = None  # replace ``prefix`` by this before forwarding (v1 → the stage)


def edge_paths(cfg: RoutesFile, r: ExportRoute) -> list[EdgePath]:
    """As the proxy serves it (routes.matcher.split_version): v1 under the stage as today and under
    /api/v1 with the prefix taken off; later versions under /api/vN, forwarded as received."""
    out: list[EdgePath] = []
    for v in r.versions:
        if v == "v1":
            out += [EdgePath(cfg.stage_prefix), EdgePath(f"/{VERSION_PREFIX}/v1", cfg.stage_prefix)]
        else:
            out.append(EdgePath(f"/{VERSION_PREFIX}/{v}"))
    return out


INTERNAL_PATH = "/" + "/".join(INTERNAL_PREFIX)
INTERNAL_NOTE = f"{INTERNAL_PATH}/… is service-to-service only: answered 404 at the edge, as the proxy does."


def search_to_fullmatch(pattern: str) -> str | None:
    """A Python ``re.search`` pattern as an RE2 full-match regex (Istio/Envoy), or None if it uses
    Python-only syntax. ``(?s).*(?:P).*`` is exact: RE2's ^/$ only match at the text's ends."""
    if _NOT_RE2.search(pattern):
        return None
    return f"(?s).*(?:{pattern}).*"


def _precedence(template: str, has_predicates: bool, index: int) -> tuple:
    # The proxy's trie tries literal segments before {param} before a greedy {param+}, and routes
    # with conditions before those without: first-match routers need that order spelled out.
    kinds = tuple(2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in template.split("/") if s)
    return (kinds, 0 if has_predicates else 1, index)


def export_routes(cfg: RoutesFile) -> list[ExportRoute]:
    """routes.yaml's routes in match precedence, their conditions translated where possible."""
    out = []
    for _i, rc in sorted(enumerate(cfg.routes), key=lambda x: _precedence(x[1].path, not x[1].match.is_empty(), x[0])):
        why: list[str] = []
        conds: dict[str, dict[str, str]] = {"query": {}, "header": {}}
        if rc.match.body:
            why.append("JSON body conditions")
        if rc.match.path:
            why.append("path-parameter conditions")
        for where in ("query", "header"):
            for name, pred in getattr(rc.match, where).items():
                if not isinstance(pred, str):
                    why.append(f"negated {where} condition on {name!r}")
                    continue
                rx = search_to_fullmatch(pred)
                if rx is None:
                    why.append(f"non-RE2 regex on {where} {name!r}")
                else:
                    conds[where][name.lower() if where == "header" else name] = rx
        out.append(ExportRoute(rc.service, rc.route_id, rc.path, tuple(m for m in rc.methods), conds["query"],
                               conds["header"], ", ".join(why) or None, tuple(rc.versions),
                               rc.deprecation.headers() if rc.deprecation else ()))
    return out


def path_regex(prefix: str, template: str) -> str:
    parts = []
    for s in (x for x in template.split("/") if x):
        if s.endswith("+}"):
            parts.append(".+")
        elif s.startswith("{"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(s))
    return re.escape(prefix) + "/" + "/".join(parts)


def is_literal(template: str) -> bool:
    return "{" not in template


def alb_path_pattern(prefix: str, template: str) -> str:
    return prefix + "/" + "/".join("*" if s.startswith("{") else s for s in template.split("/") if s)


def method_groups(methods: tuple[str, ...]) -> list[tuple[list[str], bool]]:
    """Safe methods (mirrored) and the rest (never mirrored: writes are compared via dual-write replay)."""
    safe = sorted(m for m in methods if m in SAFE_METHODS)
    other = sorted(m for m in methods if m not in SAFE_METHODS)
    return [(g, g is safe) for g in (safe, other) if g]


def percent_weights(percent_bp: int) -> tuple[int, int]:
    """(legacy, new) integer weights summing to 100 (round half up)."""
    new = min(100, (percent_bp + 50) // 100)
    return 100 - new, new


def notes_for(routes: list[ExportRoute], splits: dict[str, Split], *, integer_percent: bool, alb: bool,
              version: int) -> list[str]:
    notes = [f"Generated by `chariot-migrate routes export` at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
             f"from rollout state version {version}.", STICKINESS_NOTE, INTERNAL_NOTE]
    notes.append("ALB cannot mirror requests: shadow percentages are not exported." if alb else MIRROR_NOTE)
    if alb:
        notes.append(f"ALB cannot rewrite paths: /{VERSION_PREFIX}/v1/… is not exported (clients keep the stage path), "
                     "and Deprecation/Sunset headers are not added.")
    if integer_percent:
        for s in splits.values():
            if s.percent_bp % 100:
                legacy, new = percent_weights(s.percent_bp)
                notes.append(f"{s.service}: {s.percent_bp / 100:g}% new is rounded to {new}% (integer weights).")
    for s in splits.values():
        if s.pins:
            notes.append(f"{s.service}: {s.pins} pinned account(s) are not expressible and follow the weights.")
    for r in routes:
        why = "any regex condition (ALB matches wildcards only)" if alb and (r.query or r.header) else r.unexpressible
        if why:
            notes.append(f"route {r.route_id!r} ({r.service}) is exported as legacy-only: {why} cannot be expressed.")
    return notes


def _suffix(edge: EdgePath) -> str:
    """Entry-name suffix: none for the stage path (the names exports had before versions)."""
    return "-" + edge.prefix.strip("/").replace("/", "-") if edge.prefix.startswith(f"/{VERSION_PREFIX}/") else ""


def _expressible(r: ExportRoute, *, alb: bool) -> bool:
    return r.unexpressible is None and not (alb and (r.query or r.header))


# --- Istio ------------------------------------------------------------------------------------


def render_istio(cfg: RoutesFile, routes: list[ExportRoute], splits: dict[str, Split], *, name: str = "chariot-api",
                 hosts: list[str] | None = None, legacy_host: str = "legacy", namespace: str | None = None,
                 version: int = 0) -> str:
    http: list[dict[str, Any]] = [{"name": "internal-api-404", "match": [
        {"uri": {"prefix": p + INTERNAL_PATH + "/"}} for p in dict.fromkeys(("", cfg.stage_prefix))],
        "directResponse": {"status": 404}}]
    for n, r in enumerate(routes):
        split = splits.get(r.service, Split(r.service))
        ok = _expressible(r, alb=False)
        for (methods, safe), edge in ((g, e) for g in method_groups(r.methods) for e in edge_paths(cfg, r)):
            m: dict[str, Any] = {"uri": {"exact": edge.prefix + r.template} if is_literal(r.template)
                                 else {"regex": path_regex(edge.prefix, r.template)},
                                 "method": {"exact": methods[0]} if len(methods) == 1 else {"regex": "|".join(methods)}}
            if ok and r.query:
                m["queryParams"] = {k: {"regex": v} for k, v in r.query.items()}
            if ok and r.header:
                m["headers"] = {k: {"regex": v} for k, v in r.header.items()}
            entry: dict[str, Any] = {"name": f"{r.service}-{n}-{'-'.join(methods).lower()}{_suffix(edge)}", "match": [m]}
            if edge.rewrite_to is not None:
                entry["rewrite"] = {"uriRegexRewrite": {"match": f"^{re.escape(edge.prefix)}/",
                                                        "rewrite": edge.rewrite_to + "/"}}
            if r.response_headers:
                entry["headers"] = {"response": {"add": dict(r.response_headers)}}
            legacy_w, new_w = percent_weights(split.percent_bp) if ok else (100, 0)
            if new_w == 0 or legacy_w == 0:
                entry["route"] = [{"destination": {"host": legacy_host if new_w == 0 else r.service}, "weight": 100}]
            else:
                entry["route"] = [{"destination": {"host": legacy_host}, "weight": legacy_w},
                                  {"destination": {"host": r.service}, "weight": new_w}]
            if ok and safe and split.shadow_bp > 0:
                entry["mirror"] = {"host": r.service if new_w < 100 else legacy_host}
                entry["mirrorPercentage"] = {"value": split.shadow_bp / 100}
            http.append(entry)
    http.append({"name": "default-legacy", "route": [{"destination": {"host": legacy_host}, "weight": 100}]})
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    doc = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": meta,
           "spec": {"hosts": hosts or [name], "http": http}}
    header = "".join(f"# {line}\n" for line in notes_for(routes, splits, integer_percent=True, alb=False,
                                                             version=version))
    return header + yaml.safe_dump(doc, sort_keys=False, width=1000)


# --- Envoy ------------------------------------------------------------------------------------


def render_envoy(cfg: RoutesFile, routes: list[ExportRoute], splits: dict[str, Split], *, name: str = "chariot-api",
                 legacy_cluster: str = "legacy", version: int = 0) -> str:
    out: list[dict[str, Any]] = [{"name": f"internal-api-404{'-stage' if p else ''}", "match": {"prefix": p + INTERNAL_PATH + "/"},
                                  "direct_response": {"status": 404}} for p in dict.fromkeys(("", cfg.stage_prefix))]
    for n, r in enumerate(routes):
        split = splits.get(r.service, Split(r.service))
        ok = _expressible(r, alb=False)
        for (methods, safe), edge in ((g, e) for g in method_groups(r.methods) for e in edge_paths(cfg, r)):
            match: dict[str, Any] = ({"path": edge.prefix + r.template} if is_literal(r.template)
                                     else {"safe_regex": {"regex": path_regex(edge.prefix, r.template)}})
            match["headers"] = [{"name": ":method", "string_match": {"safe_regex": {"regex": "|".join(methods)}}}]
            if ok:
                match["headers"] += [{"name": k, "string_match": {"safe_regex": {"regex": v}}} for k, v in r.header.items()]
                if r.query:
                    match["query_parameters"] = [{"name": k, "string_match": {"safe_regex": {"regex": v}}}
                                                 for k, v in r.query.items()]
            new_bp = split.percent_bp if ok else 0
            weighted: list[dict[str, Any]] = [{"name": legacy_cluster, "weight": 10_000 - new_bp},
                                              {"name": r.service, "weight": new_bp}]
            clusters = [c for c in weighted if c["weight"] > 0]
            action: dict[str, Any] = {"weighted_clusters": {"clusters": clusters}}
            if ok and safe and split.shadow_bp > 0:
                action["request_mirror_policies"] = [{
                    "cluster": r.service if new_bp < 10_000 else legacy_cluster,
                    "runtime_fraction": {"default_value": {"numerator": split.shadow_bp, "denominator": "TEN_THOUSAND"}},
                }]
            if edge.rewrite_to is not None:
                action["regex_rewrite"] = {"pattern": {"regex": f"^{re.escape(edge.prefix)}/"},
                                           "substitution": edge.rewrite_to + "/"}
            extra: dict[str, Any] = {"response_headers_to_add": [
                {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                for k, v in r.response_headers]} if r.response_headers else {}
            out.append({"name": f"{r.service}-{n}-{'-'.join(methods).lower()}{_suffix(edge)}", "match": match, "route": action,
                        **extra,
                        "metadata": {"filter_metadata": {"chariot-migrate": {
                            "service": r.service, "route": r.route_id, "percent_new": new_bp / 100,
                            "note": "weights split per request (basis points, sum 10000); no per-account stickiness"}}}})
    out.append({"name": "default-legacy", "match": {"prefix": "/"}, "route": {"cluster": legacy_cluster}})
    doc = {"name": name, "virtual_hosts": [{"name": name, "domains": ["*"], "routes": out}]}
    return json.dumps(doc, indent=2)


# --- ALB --------------------------------------------------------------------------------------


def render_alb(cfg: RoutesFile, routes: list[ExportRoute], splits: dict[str, Split], *,
               target_groups: dict[str, str] | None = None, legacy_group: str = "legacy", version: int = 0) -> str:
    tgs = target_groups or {}

    def arn(name: str) -> str:
        return tgs.get(name, f"TARGET_GROUP_ARN_{name}")

    rules: list[dict[str, Any]] = [{
        "Priority": 1,
        "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {
            "Values": [p + INTERNAL_PATH + "/*" for p in dict.fromkeys(("", cfg.stage_prefix))]}}],
        "Actions": [{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "404", "ContentType": "application/json", "MessageBody": '{"error": "not found"}'}}],
    }]
    for r, edge in ((x, e) for x in routes for e in edge_paths(cfg, x) if e.rewrite_to is None):
        split = splits.get(r.service, Split(r.service))
        ok = _expressible(r, alb=True)
        legacy_w, new_w = percent_weights(split.percent_bp) if ok else (100, 0)
        weighted: list[dict[str, Any]] = [{"TargetGroupArn": arn(legacy_group), "Weight": legacy_w},
                                          {"TargetGroupArn": arn(r.service), "Weight": new_w}]
        groups = [g for g in weighted if g["Weight"] > 0]
        rules.append({
            "Priority": len(rules) + 1,
            "Conditions": [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": [alb_path_pattern(edge.prefix, r.template)]}},
                {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": sorted(r.methods)}},
            ],
            "Actions": [{"Type": "forward", "ForwardConfig": {
                "TargetGroups": groups, "TargetGroupStickinessConfig": {"Enabled": False}}}],
            "Tags": [{"Key": "chariot-migrate:route", "Value": r.route_id[:256]}],
        })
    doc = {"Comment": notes_for(routes, splits, integer_percent=True, alb=True, version=version),
           "Rules": rules,
           "DefaultActions": [{"Type": "forward", "ForwardConfig": {
               "TargetGroups": [{"TargetGroupArn": arn(legacy_group), "Weight": 100}]}}]}
    return json.dumps(doc, indent=2)


def render(fmt: str, cfg: RoutesFile, splits: dict[str, Split], *, version: int = 0, **kw: Any) -> str:
    routes = export_routes(cfg)
    if fmt == "istio":
        return render_istio(cfg, routes, splits, version=version, **kw)
    if fmt == "envoy":
        return render_envoy(cfg, routes, splits, version=version, **kw)
    if fmt == "alb":
        return render_alb(cfg, routes, splits, version=version, **kw)
    raise ValueError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")


def register(routes_app: typer.Typer) -> None:
    @routes_app.command("export")
    @friendly_errors
    def export(fmt: str = typer.Option(..., "--format", "-f", help="istio | envoy | alb"),
               output: str = typer.Option(None, "-o", "--output", help="write to this file instead of stdout"),
               name: str = typer.Option("chariot-api", "--name", help="VirtualService / route config name"),
               legacy: str = typer.Option("legacy", "--legacy-host",
                                          help="legacy destination: Istio host, Envoy cluster, ALB target group key"),
               namespace: str = typer.Option(None, "--namespace", help="Istio metadata.namespace"),
               host: list[str] = typer.Option(None, "--host", help="Istio spec.hosts (repeatable) [--name]"),
               target_group: list[str] = typer.Option(None, "--target-group",
                                                      help="ALB: NAME=ARN (repeatable; NAME is a service or legacy)"),
               routes: str = RoutesOpt, state: str = StateOpt) -> None:
        """The current split of every service as an Istio VirtualService (YAML), an Envoy v3
        RouteConfiguration (JSON) or ALB weighted listener rules (JSON)."""
        from ..rollout.operations import OperationError, Operations
        from ..rollout.store import open_state_store
        from ..routes.loader import load_table

        if fmt not in FORMATS:
            raise OperationError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
        cfg = load_table(routes_path(routes)).config
        store = open_state_store(state)
        ops = Operations(store, cfg)
        splits = {r.service: Split(r.service, r.state.percent_bp, r.state.shadow_bp, len(r.state.pins))
                  for r in ops.status() if r.configured}
        if fmt == "istio":
            text = render_istio(cfg, export_routes(cfg), splits, name=name, hosts=host or None, legacy_host=legacy,
                                namespace=namespace, version=store.version())
        elif fmt == "envoy":
            text = render_envoy(cfg, export_routes(cfg), splits, name=name, legacy_cluster=legacy,
                                version=store.version())
        else:
            tgs = {}
            for item in target_group or []:
                k, sep, v = item.partition("=")
                if not sep or not k or not v:
                    raise OperationError(f"--target-group {item!r}: use NAME=ARN")
                tgs[k] = v
            text = render_alb(cfg, export_routes(cfg), splits, target_groups=tgs, legacy_group=legacy,
                              version=store.version())
        if fmt == "envoy":  # JSON has no comments: the caveats go to stderr (and into route metadata)
            for line in notes_for(export_routes(cfg), splits, integer_percent=False, alb=False,
                                  version=store.version()):
                typer.echo(f"note: {line}", err=True)
        if output:
            from pathlib import Path

            Path(output).write_text(text if text.endswith("\n") else text + "\n")
            console.print(f"wrote {esc(output)}")
        else:
            typer.echo(text)
