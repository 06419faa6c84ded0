"""deploy/k8s: every overlay renders with `kubectl kustomize`, validates strictly against the Kubernetes
schemas (kubernetes-validate), and keeps the deployment invariants on the rendered objects."""
from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from adapter.metrics import requests_in_flight
from adapter.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu-demo", "gpu", "llama-70b")
GPU = "nvidia.com/gpu"
LWS_KIND = "LeaderWorkerSet"
# leaderworkerset.x-k8s.io/v1 (kubernetes-sigs/lws api/leaderworkerset/v1/leaderworkerset_types.go)
LWS_SPEC_FIELDS = {"replicas", "leaderWorkerTemplate", "rolloutStrategy", "startupPolicy", "networkConfig"}
LWS_TEMPLATE_FIELDS = {"leaderTemplate", "workerTemplate", "size", "restartPolicy", "subGroupPolicy",
                       "volumeClaimTemplates", "persistentVolumeClaimRetentionPolicy"}
LWS_POD_LABELS = {"leaderworkerset.sigs.k8s.io/worker-index"}  # set by the LWS controller on each pod


@cache
def render(overlay: str) -> tuple[dict, ...]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the Kustomize overlays cannot be rendered here")
    out = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def one(docs, kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_templates(doc: dict) -> list[dict]:
    if doc["kind"] == LWS_KIND:
        lwt = doc["spec"]["leaderWorkerTemplate"]
        return [t for t in (lwt.get("leaderTemplate"), lwt["workerTemplate"]) if t]
    template = doc.get("spec", {}).get("template")
    return [template] if template and "spec" in template else []


def containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def triton_workload(docs) -> dict:
    return next(d for d in docs if d["kind"] in ("Deployment", LWS_KIND) and d["metadata"]["name"] == "triton")


def serving_template(docs) -> dict:
    """The pod template whose container runs tritonserver (the LWS leader in multi-node groups)."""
    return pod_templates(triton_workload(docs))[0]


def selects(selector: dict, template: dict, ignore: set[str] = frozenset()) -> bool:
    labels = template["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items() if k not in ignore)


def probe_path(container: dict, probe: str) -> str | None:
    return container.get(probe, {}).get("httpGet", {}).get("path")


# --- rendering and strict schema validation ---------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly(overlay):
    """Core kinds against the Kubernetes schemas, unknown fields rejected. The LeaderWorkerSet is a CRD that
    kubernetes-validate has no schema for: its pod templates are validated as core v1 PodTemplates instead,
    and its own fields are checked against the LWS v1 API."""
    from kubernetes_validate import utils  # noqa: PLC0415

    version = utils.latest_version()
    docs = render(overlay)
    for doc in docs:
        if doc["kind"] == LWS_KIND:
            check_leaderworkerset(doc, version)
            continue
        utils.validate(doc, version, strict=True)  # raises ValidationError / SchemaNotFoundError


def check_leaderworkerset(doc: dict, version: str) -> None:
    from kubernetes_validate import utils  # noqa: PLC0415

    assert doc["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert set(doc["spec"]) <= LWS_SPEC_FIELDS, set(doc["spec"]) - LWS_SPEC_FIELDS
    lwt = doc["spec"]["leaderWorkerTemplate"]
    assert set(lwt) <= LWS_TEMPLATE_FIELDS, set(lwt) - LWS_TEMPLATE_FIELDS
    assert isinstance(lwt["size"], int) and lwt["size"] >= 1
    for template in pod_templates(doc):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": doc["metadata"]["name"]},
                   "template": template}
        utils.validate(wrapped, version, strict=True)


def test_lws_check_rejects_unknown_fields():
    """The CRD fallback is not a pass-through: a misspelt field or a bad pod template fails."""
    from kubernetes_validate import utils  # noqa: PLC0415

    lws = yaml.safe_load(yaml.safe_dump(triton_workload(render("llama-70b"))))
    lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(utils.ValidationError):
        check_leaderworkerset(lws, utils.latest_version())
    lws = yaml.safe_load(yaml.safe_dump(triton_workload(render("llama-70b"))))
    lws["spec"]["leaderWorkerTemplate"]["sise"] = 2
    with pytest.raises(AssertionError):
        check_leaderworkerset(lws, utils.latest_version())


# --- invariants on the rendered objects --------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay):
    for doc in render(overlay):
        for template in pod_templates(doc):
            for c in containers(template):
                for kind in ("requests", "limits"):
                    got = c.get("resources", {}).get(kind, {})
                    assert {"cpu", "memory"} <= set(got), f"{doc['kind']}/{doc['metadata']['name']} {c['name']}: {kind}"
                assert c["resources"]["requests"].get(GPU) == c["resources"]["limits"].get(GPU)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_probes_gpu_and_repository(overlay):
    docs = render(overlay)
    template = serving_template(docs)
    server = template["spec"]["containers"][0]
    assert probe_path(server, "readinessProbe") == "/v2/health/ready"
    assert probe_path(server, "livenessProbe") == "/v2/health/live"
    gpus = int(server["resources"]["limits"].get(GPU, 0))
    assert gpus == {"cpu-demo": 0, "gpu": 1, "llama-70b": 4}[overlay]
    repo_mount = next(m for m in server["volumeMounts"] if m["mountPath"] == "/models")
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == repo_mount["name"])
    claim = volume["persistentVolumeClaim"]["claimName"]
    one(docs, "PersistentVolumeClaim", claim)
    service = one(docs, "Service", "triton")
    assert selects(service["spec"]["selector"], template, LWS_POD_LABELS)
    assert {p["port"] for p in service["spec"]["ports"]} >= {8000, 8001}


def test_multi_node_group_shape():
    lws = triton_workload(render("llama-70b"))
    assert lws["kind"] == LWS_KIND
    lwt = lws["spec"]["leaderWorkerTemplate"]
    leader, worker = lwt["leaderTemplate"], lwt["workerTemplate"]
    env = {e["name"]: e.get("value") for e in leader["spec"]["containers"][0]["env"]}
    assert int(env["GPUS_PER_POD"]) == int(leader["spec"]["containers"][0]["resources"]["limits"][GPU])
    assert worker["spec"]["containers"][0]["resources"]["limits"][GPU] == env["GPUS_PER_POD"]
    service = one(render("llama-70b"), "Service", "triton")
    assert service["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"  # leaders only
    volumes = {v["name"]: v for v in leader["spec"]["volumes"]}
    generated = [d["metadata"]["name"] for d in render("llama-70b") if d["kind"] == "ConfigMap"]
    assert volumes["launch"]["configMap"]["name"] in generated  # the hashed name reached the CRD's template


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_adapter_is_replicated_drained_and_probed(overlay):
    docs = render(overlay)
    adapter = one(docs, "Deployment", "adapter")
    assert adapter["spec"]["replicas"] >= 2
    template = adapter["spec"]["template"]
    c = template["spec"]["containers"][0]
    assert probe_path(c, "readinessProbe") == "/health/ready"
    assert probe_path(c, "livenessProbe") == "/health"
    env = {e["name"]: e for e in c["env"]}
    shutdown = float(env["SHUTDOWN_TIMEOUT_S"]["value"]) if "SHUTDOWN_TIMEOUT_S" in env \
        else Settings.model_fields["shutdown_timeout_s"].default
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert template["spec"]["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + shutdown
    service = one(docs, "Service", "adapter")
    assert selects(service["spec"]["selector"], template)
    assert not selects(service["spec"]["selector"], serving_template(docs))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaler_on_cpu_and_running_requests(overlay):
    docs = render(overlay)
    hpa = one(docs, "HorizontalPodAutoscaler", "adapter")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "adapter"}
    assert hpa["spec"]["minReplicas"] >= 2
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    pods_metric = metrics["Pods"]["pods"]["metric"]["name"]
    # the Prometheus adapter rule turns the adapter's own gauge into the name the HPA asks for
    rule = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())["rules"]["custom"][0]
    prometheus_name = requests_in_flight._name
    assert rule["seriesQuery"].startswith(prometheus_name + "{")
    assert re.sub(rule["name"]["matches"], rule["name"]["as"].replace("${1}", r"\1"), prometheus_name) == pods_metric


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_cover_adapter_and_triton(overlay):
    docs = render(overlay)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    adapter = one(docs, "Deployment", "adapter")["spec"]["template"]
    assert any(selects(b["spec"]["selector"]["matchLabels"], adapter) for b in budgets)
    assert any(selects(b["spec"]["selector"]["matchLabels"], serving_template(docs)) for b in budgets)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_keys_come_from_a_secret(overlay):
    docs = render(overlay)
    env = {e["name"]: e for e in one(docs, "Deployment", "adapter")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["API_KEYS"]["valueFrom"]["secretKeyRef"]["name"]
    for doc in docs:
        for template in pod_templates(doc):
            for c in containers(template):
                for e in c.get("env", []):
                    if re.search(r"KEY|TOKEN|SECRET|PASSWORD", e["name"]):
                        assert "value" not in e, f"{e['name']} is a literal in {doc['metadata']['name']}"
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are created in the cluster, never committed"


@pytest.mark.parametrize("overlay,command", [
    ("cpu-demo", ["python -m builders demo --out /models"]),
    ("gpu", ["python -m builders deploy --checkpoints /checkpoints --out /models", "--device cuda",
             "python -m builders compile /models"]),
    ("llama-70b", ["python -m builders llm --engine tensorrt-llm", "--tp 4 --pp 2", "--out /models"]),
])
def test_engine_build_job_writes_the_served_repository(overlay, command):
    docs = render(overlay)
    job = one(docs, "Job", "engine-build")["spec"]["template"]
    script = " ".join(job["spec"]["containers"][0]["args"]).replace("\\\n", "")
    script = re.sub(r"\s+", " ", script)
    for part in command:
        assert part in script
    assert script.rstrip().endswith("touch /models/.complete")  # the marker Triton's init container waits for
    mount = next(m for m in job["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == "/models")
    assert not mount.get("readOnly")
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in job["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    serving = serving_template(docs)["spec"]
    served = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in serving["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims[mount["name"]] == served["models"]
    # engines are compiled on the serving GPU type, with the serving pod's GPU count
    assert job["spec"].get("nodeSelector") == serving.get("nodeSelector")
    build_gpus = job["spec"]["containers"][0]["resources"]["limits"].get(GPU)
    assert build_gpus == serving["containers"][0]["resources"]["limits"].get(GPU)


def test_cpu_demo_needs_no_gpu():
    text = yaml.safe_dump_all(render("cpu-demo"))
    assert GPU not in text
