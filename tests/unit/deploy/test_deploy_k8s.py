"""Static checks of deploy/k8s: schemas, kustomize builds, security, probes, scaling, policies."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.30.0"  # schemas shipped offline by kubernetes-validate
SERVICE_PORTS = {
    "account": 9101, "asset-discovery": 9102, "risk-assessment": 9103, "capabilities": 9104,
    "integration-hub": 9105, "notification": 9106, "reporting": 9107, "configuration": 9108,
}
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifest_files() -> list[Path]:
    """Every YAML file under deploy/k8s that is a Kubernetes object (not a kustomization or a patch)."""
    out = []
    for p in sorted(K8S.rglob("*.yaml")):
        if p.name in KUSTOMIZATION_NAMES or p == BASE / "routes.yaml":
            continue
        if K8S / "overlays" in p.parents:
            continue  # patches are partial objects: checked through the built overlays
        out.append(p)
    return out


def base_objects() -> list[dict[str, Any]]:
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    objs: list[dict[str, Any]] = []
    for res in kust["resources"]:
        objs.extend(load_docs(BASE / res))
    return objs


_BUILDS: dict[Path, str] = {}


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with built-in kustomize) not installed; test_kustomization_references covers paths")
    if directory not in _BUILDS:  # one build per directory per session: each costs ~0.5 s
        out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        _BUILDS[directory] = out.stdout
    return [d for d in yaml.safe_load_all(_BUILDS[directory]) if d is not None]


def pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objs
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# ---------------------------------------------------------------------------------------------
# parsing and schemas


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted((REPO / "deploy").rglob("*.yaml"))
    assert len(files) > 15
    for p in files:
        assert load_docs(p), f"{p} is empty"


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_matches_kubernetes_schema(path: Path) -> None:
    for doc in load_docs(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_schema_validation_rejects_a_typo() -> None:
    # Guards the guard: strict validation must catch an unknown field, or the tests above prove nothing.
    deployment = copy.deepcopy(by_kind(load_docs(BASE / "services" / "account.yaml"), "Deployment")["account"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/health"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=lambda p: str(p.relative_to(K8S)))
def test_kustomize_build_is_schema_valid(directory: Path) -> None:
    objs = kustomize_build(directory)
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "NetworkPolicy",
            "PodDisruptionBudget", "Namespace", "ServiceAccount"} <= kinds
    for o in objs:
        kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
    assert not [o for o in objs if o["kind"] == "Secret"], "secrets are referenced, never committed"


# ---------------------------------------------------------------------------------------------
# kustomize structure without kustomize


@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_references(directory: Path) -> None:
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    for res in kust.get("resources", []):
        target = directory / res
        assert target.exists(), f"{directory.name}: resource {res} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").exists(), f"{res} is a directory without a kustomization"
    for gen in kust.get("configMapGenerator", []):
        for f in gen.get("files", []):
            src = f.split("=", 1)[-1]
            assert (directory / src).is_file(), f"configMapGenerator file {src} missing"
            assert ".." not in Path(src).parts, "kustomize cannot load files outside its directory"
    base = base_objects()
    for patch in kust.get("patches", []):
        body = load_docs(directory / patch["path"]) if "path" in patch else [yaml.safe_load(patch["patch"])]
        target = patch.get("target")
        if target:
            matches = [o for o in base if _matches(o, target)]
            assert matches, f"patch {patch} targets nothing in base"
        else:
            for doc in body:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key in {(o["kind"], o["metadata"]["name"]) for o in base}, f"patch targets missing {key}"


def _matches(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    if "name" in target and obj["metadata"]["name"] != target["name"]:
        return False
    selector = target.get("labelSelector")
    if selector:
        labels = obj["metadata"].get("labels", {})
        key, _, rest = selector.partition(" in ")
        if rest:
            values = rest.strip("() ").split(",")
            return labels.get(key.strip()) in values
        k, _, v = selector.partition("=")
        return labels.get(k) == v
    return True


def test_label_selector_matcher_is_not_vacuous() -> None:
    svc = {"kind": "Deployment", "metadata": {"name": "x", "labels": {"app.kubernetes.io/component": "service"}}}
    assert _matches(svc, {"kind": "Deployment", "labelSelector": "app.kubernetes.io/component=service"})
    assert not _matches(svc, {"kind": "Deployment", "labelSelector": "app.kubernetes.io/component=proxy"})
    assert _matches(svc, {"kind": "Deployment", "labelSelector": "app.kubernetes.io/component in (proxy,service)"})
    assert not _matches(svc, {"kind": "HorizontalPodAutoscaler"})


# ---------------------------------------------------------------------------------------------
# what the workloads must look like


def test_proxy_and_eight_services_each_have_deployment_service_and_hpa() -> None:
    objs = base_objects()
    deployments, services, hpas = by_kind(objs, "Deployment"), by_kind(objs, "Service"), by_kind(objs, "HorizontalPodAutoscaler")
    for name in ["proxy", *SERVICE_PORTS]:
        assert name in deployments and name in services and name in hpas, name
    for name, port in SERVICE_PORTS.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["service", name]
        # The first port is the HTTP API; asset-discovery also serves gRPC (its own test below).
        assert container["ports"][0] == {"name": "http", "containerPort": port, "protocol": "TCP"}
        assert [p["name"] for p in container["ports"]] == (["http", "grpc"] if name == "asset-discovery" else ["http"])
        assert services[name]["spec"]["ports"][0]["port"] == port
    proxy = deployments["proxy"]["spec"]["template"]["spec"]["containers"][0]
    assert proxy["args"] == ["proxy"]
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == {"http": 8000, "admin": 8001}


def test_selectors_select_their_pods() -> None:
    objs = base_objects()
    deployments = by_kind(objs, "Deployment")
    for d in deployments.values():
        sel = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert sel.items() <= labels.items(), d["metadata"]["name"]
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for kind in ("Service", "PodDisruptionBudget"):
        for name, o in by_kind(objs, kind).items():
            sel = o["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            assert any(sel.items() <= lab.items() for lab in pod_labels), f"{kind} {name} selects no pod"
    for name, hpa in by_kind(objs, "HorizontalPodAutoscaler").items():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments, name


def test_probes_on_every_app_container() -> None:
    deployments = by_kind(base_objects(), "Deployment")
    for name in SERVICE_PORTS:
        c = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    proxy = deployments["proxy"]["spec"]["template"]["spec"]["containers"][0]
    assert proxy["livenessProbe"]["httpGet"]["path"] == "/health"
    assert proxy["readinessProbe"]["httpGet"]["port"] == "admin"


def test_resources_and_hpa_targets_in_base() -> None:
    objs = base_objects()
    for name, spec in pod_specs(objs):
        for c in spec["containers"]:
            assert c["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "512Mi"}}, name
    for name, hpa in by_kind(objs, "HorizontalPodAutoscaler").items():
        spec = hpa["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 20), name
        targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
        assert targets == {"cpu": {"type": "Utilization", "averageUtilization": 70},
                           "memory": {"type": "Utilization", "averageUtilization": 80}}, name


@pytest.mark.parametrize("directory", [BASE, *OVERLAYS], ids=lambda p: str(p.relative_to(K8S)))
def test_pods_run_restricted(directory: Path) -> None:
    objs = kustomize_build(directory)
    namespaces = by_kind(objs, "Namespace")
    assert all(n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
               for n in namespaces.values())
    for name, spec in pod_specs(objs):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec.get("automountServiceAccountToken") is False, name
        mounts_needed = set()
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            mounts_needed |= {m["name"] for m in c.get("volumeMounts", [])}
        assert mounts_needed <= {v["name"] for v in spec.get("volumes", [])}, name
    app_pods = [(n, s) for n, s in pod_specs(objs) if n != "redis"]
    for name, spec in app_pods:
        assert spec["securityContext"]["runAsUser"] == 10001, name
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert {"/tmp", "/app/.chariot-migrate"} <= mounts, f"{name}: read-only root needs writable dirs"


def test_secrets_are_only_referenced() -> None:
    secretish = ("TOKEN", "SECRET", "PASSWORD", "PUBLIC_KEY", "ACCESS_KEY")
    seen = set()
    for name, spec in pod_specs(base_objects()):
        for c in spec["containers"]:
            for var, e in env_of(c).items():
                if any(s in var for s in secretish):
                    assert "secretKeyRef" in e.get("valueFrom", {}), f"{name}: {var} must come from a Secret"
                    seen.add(var)
    assert {"CHARIOT_MIGRATE_ADMIN_TOKEN", "JWT_PUBLIC_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= seen
    for p in (REPO / "deploy").rglob("*"):
        if p.is_file() and p.suffix in (".yaml", ".json", ".sh", ".md", ""):
            text = p.read_text(errors="replace")
            assert "kind: Secret\n" not in text, p
            assert "BEGIN PRIVATE KEY" not in text and "BEGIN RSA PRIVATE KEY" not in text, p


def test_proxy_and_services_share_the_redis_state_store() -> None:
    objs = kustomize_build(BASE)
    env_cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("chariot-migrate-env-"))
    for key in ("CHARIOT_MIGRATE_STATE", "CHARIOT_MIGRATE_METRICS_STORE", "REDIS_URL"):
        assert env_cm["data"][key] == "redis://redis:6379/0", key
    redis_service = by_kind(objs, "Service")["redis"]["spec"]["ports"][0]
    assert redis_service["port"] == 6379
    deployments = by_kind(objs, "Deployment")
    for name in ["proxy", *SERVICE_PORTS]:
        spec = deployments[name]["spec"]["template"]["spec"]
        refs = [e["configMapRef"]["name"] for e in spec["containers"][0]["envFrom"]]
        assert refs == [env_cm["metadata"]["name"]], name
        env = env_of(spec["containers"][0])
        # `proxy` and `service run NAME` both read routes.yaml (the services for their app factory).
        assert env["CHARIOT_MIGRATE_ROUTES"]["value"] == "/etc/chariot-migrate/routes.yaml", name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["routes"]["configMap"]["name"].startswith("chariot-migrate-routes-"), name


def test_routes_configmap_is_mounted_as_a_directory() -> None:
    objs = kustomize_build(BASE)
    cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("chariot-migrate-routes-")]
    assert len(cms) == 1 and "routes.yaml" in cms[0]["data"]
    proxy = by_kind(objs, "Deployment")["proxy"]["spec"]["template"]["spec"]
    vol = next(v for v in proxy["volumes"] if v["name"] == "routes")
    assert vol["configMap"]["name"] == cms[0]["metadata"]["name"]  # hash-suffixed name propagated
    mount = next(m for m in proxy["containers"][0]["volumeMounts"] if m["name"] == "routes")
    assert "subPath" not in mount, "subPath mounts never see ConfigMap updates"


def test_proxy_has_a_disruption_budget() -> None:
    pdbs = by_kind(base_objects(), "PodDisruptionBudget")
    assert pdbs["proxy"]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "proxy"}


# ---------------------------------------------------------------------------------------------
# network policies


def _policies() -> dict[str, dict[str, Any]]:
    return by_kind(base_objects(), "NetworkPolicy")


def test_default_deny_both_directions() -> None:
    deny = _policies()["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny


def test_policies_allow_only_the_intended_paths() -> None:
    pol = _policies()
    svc_in = pol["services-ingress"]["spec"]
    sources = svc_in["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "proxy"}}} in sources
    assert any("namespaceSelector" in s for s in sources), "prometheus must reach /metrics"
    assert svc_in["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "http"}]
    redis_from = pol["redis-ingress"]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]
    assert set(redis_from["values"]) == {"proxy", "service", "controller"}
    proxy_out = pol["proxy-egress"]["spec"]["egress"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "service"}}} in proxy_out[0]["to"]
    for name in ("proxy-egress", "services-egress"):
        for rule in pol[name]["spec"]["egress"]:
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    assert "169.254.169.254/32" in peer["ipBlock"]["except"], name
                    assert rule["ports"] == [{"protocol": "TCP", "port": 443}], name


def test_named_policy_ports_exist_on_selected_pods() -> None:
    objs = base_objects()
    pods = [(d["spec"]["template"]["metadata"]["labels"], {p["name"] for c in d["spec"]["template"]["spec"]["containers"]
                                                          for p in c.get("ports", [])})
            for d in by_kind(objs, "Deployment").values()]
    for name, pol in by_kind(objs, "NetworkPolicy").items():
        sel = pol["spec"]["podSelector"].get("matchLabels", {})
        for rule in pol["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                if isinstance(port["port"], str):
                    selected = [ports for labels, ports in pods if sel.items() <= labels.items()]
                    assert selected and all(port["port"] in ports for ports in selected), (name, port)


# ---------------------------------------------------------------------------------------------
# overlays


def test_overlays_differ_in_image_replicas_and_resources() -> None:
    if len(OVERLAYS) < 2:
        pytest.fail("expected dev and prod overlays")
    built = {o.name: kustomize_build(o) for o in OVERLAYS}

    def summary(objs: list[dict[str, Any]]) -> tuple[Any, ...]:
        d = by_kind(objs, "Deployment")
        proxy = d["proxy"]["spec"]
        return (proxy["template"]["spec"]["containers"][0]["image"], proxy["replicas"],
                proxy["template"]["spec"]["containers"][0]["resources"],
                by_kind(objs, "HorizontalPodAutoscaler")["proxy"]["spec"]["minReplicas"])

    dev, prod = summary(built["dev"]), summary(built["prod"])
    assert dev[0] != prod[0] and dev[1] != prod[1] and dev[2] != prod[2] and dev[3] != prod[3]
    assert not prod[0].endswith(":latest") and ":" in prod[0], "prod runs a pinned release"
    for objs in built.values():
        for d in by_kind(objs, "Deployment").values():
            for c in d["spec"]["template"]["spec"]["containers"]:
                assert c["image"] != "chariot-migrate", "the images transformer must set every app image"


# ---------------------------------------------------------------------------------------------
# the rollout controller


def test_controller_runs_two_replicas_one_leader_with_probes_and_no_kubernetes_api() -> None:
    objs = base_objects()
    dep = by_kind(objs, "Deployment")["controller"]
    assert dep["spec"]["replicas"] == 2  # one leads through the Redis lease, the other waits
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["args"][0] == "controller"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    # the entrypoint's default health port is the one the probes and the Service use
    entry = (REPO / "deploy" / "entrypoint.sh").read_text()
    assert '--health-port "${CHARIOT_CONTROLLER_PORT:-8002}"' in entry and ports == {"health": 8002}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    # RBAC-free: no token mounted, no Role/RoleBinding shipped
    assert spec["automountServiceAccountToken"] is False
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & {o["kind"] for o in objs}
    # Redis credentials from a Secret (optional: the base Redis has none), the store from the ConfigMap
    env = env_of(c)
    for name, key in (("CHARIOT_MIGRATE_REDIS_PASSWORD", "password"), ("CHARIOT_MIGRATE_REDIS_TLS", "tls")):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "chariot-migrate-redis", "key": key, "optional": True}
    cm = yaml.safe_load((BASE / "kustomization.yaml").read_text())["configMapGenerator"]
    literals = next(g for g in cm if g["name"] == "chariot-migrate-env")["literals"]
    assert "CHARIOT_MIGRATE_STATE=redis://redis:6379/0" in literals
    assert {"configMapRef": {"name": "chariot-migrate-env"}} in c["envFrom"]
    svc = by_kind(objs, "Service")["controller"]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "controller"}


def test_controller_network_policies_allow_redis_prometheus_and_scrapes_only() -> None:
    pol = _policies()
    out = pol["controller-egress"]["spec"]["egress"]
    assert [r["ports"] for r in out] == [[{"protocol": "TCP", "port": 6379}], [{"protocol": "TCP", "port": 9090}]]
    assert not any("ipBlock" in peer for r in out for peer in r["to"])  # no AWS, no API server
    inn = pol["controller-ingress"]["spec"]["ingress"]
    assert inn[0]["ports"] == [{"protocol": "TCP", "port": "health"}]


def test_cluster_routes_share_one_outbox() -> None:
    # the controller's backlog gate must read the outbox every proxy replica writes
    doc = yaml.safe_load((BASE / "routes.yaml").read_text())
    assert doc["dual_write"]["outbox"] == "redis://redis:6379/0"


def test_every_app_pod_takes_redis_credentials_from_the_optional_secret() -> None:
    for name, spec in pod_specs(base_objects()):
        if name == "redis":
            continue
        env = env_of(spec["containers"][0])
        for var, key in (("CHARIOT_MIGRATE_REDIS_PASSWORD", "password"), ("CHARIOT_MIGRATE_REDIS_USERNAME", "username"),
                         ("CHARIOT_MIGRATE_REDIS_TLS", "tls")):
            assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "chariot-migrate-redis", "key": key,
                                                             "optional": True}, (name, var)


def test_asset_discovery_grpc_port_is_named_and_reached_only_by_risk_assessment() -> None:
    objs = base_objects()
    container = by_kind(objs, "Deployment")["asset-discovery"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "grpc", "containerPort": 9112, "protocol": "TCP"} in container["ports"]
    assert {"name": "CHARIOT_ASSET_DISCOVERY_GRPC_ADDRESS", "value": "0.0.0.0:9112"} in container["env"]
    service_ports = by_kind(objs, "Service")["asset-discovery"]["spec"]["ports"]
    assert any(p["name"] == "grpc" and p["targetPort"] == "grpc" and p["port"] == 9112 for p in service_ports)
    caller = by_kind(objs, "Deployment")["risk-assessment"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "ASSET_DISCOVERY_GRPC", "value": "asset-discovery:9112"} in caller["env"]
    pol = _policies()
    # Which policies open the grpc port at all: only this one, and only from risk-assessment.
    opening = {name for name, p in pol.items() for rule in p["spec"].get("ingress", [])
               for port in rule.get("ports", []) if port["port"] in ("grpc", 9112)}
    assert opening == {"asset-discovery-grpc-ingress"}
    rule = pol["asset-discovery-grpc-ingress"]["spec"]
    assert rule["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "asset-discovery"}}
    assert rule["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "risk-assessment"}}}],
                                "ports": [{"protocol": "TCP", "port": "grpc"}]}]
    egress = pol["risk-assessment-grpc-egress"]["spec"]
    assert egress["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "risk-assessment"}}
    assert egress["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9112}]
