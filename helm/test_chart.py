#!/usr/bin/env python3
"""Lints and renders the Helm chart with Helm's own Go SDK (PyPI helm-python-sdk, no helm
binary), then validates every rendered object against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors) and checks what the chart promises:
non-root and read-only pods, probes on the admin port, Prometheus scraping, sidecar mode,
Redis. Writes each rendering's sidecar.toml to OUT_DIR/<values>.toml so the test suite can
run `sso-sidecar check` on it.

Usage: test_chart.py OUT_DIR   (run by tests/helm.rs; `make check` runs `lint` only)
       test_chart.py --lint
"""
import json
import os
import re
import sys

import helm_python as helm
import kubernetes_validate
import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sso-sidecar")
KUBERNETES = "1.30.0"
VALUE_SETS = {
    "default": None,
    "sidecar": "ci/sidecar-values.yaml",
    "redis": "ci/redis-values.yaml",
}


def values(path):
    if path is None:
        return None
    with open(os.path.join(CHART, path)) as f:
        return helm.values_from_yaml(f.read())


def lint():
    problems = []
    for name, path in VALUE_SETS.items():
        report = helm.lint(CHART, values(path), strict=True, kube_version=f"v{KUBERNETES}")
        problems += [f"{name}: {m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
        problems += [f"{name}: {e}" for e in report["errors"]]
    return problems


def render(path):
    chart = helm.Chart.load(CHART)
    manifests = chart.render(values(path), name="shop-sso", namespace="shop", is_install=True)
    objects = []
    for template, text in sorted(manifests.items()):
        if not template.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def validate(objects):
    problems = []
    for (kind, name), obj in objects.items():
        if kind == "PrometheusRule":
            # A CRD as well: every rule needs a name, an expression and a severity.
            for group in obj["spec"]["groups"]:
                for rule in group["rules"]:
                    if not (rule.get("alert") and rule.get("expr") and rule.get("labels", {}).get("severity")):
                        problems.append(f"PrometheusRule {name}: incomplete rule {rule}")
            continue
        if kind == "ServiceMonitor":
            # A CRD: not in the Kubernetes schemas; check the fields Prometheus needs.
            endpoint = obj["spec"]["endpoints"][0]
            if obj["apiVersion"] != "monitoring.coreos.com/v1" or endpoint["port"] != "admin" or endpoint["path"] != "/metrics":
                problems.append(f"ServiceMonitor {name}: {obj['spec']}")
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{kind} {name}: {'.'.join(str(p) for p in e.path)}: {e.message}")
    return problems


def expect(condition, message, problems):
    if not condition:
        problems.append(message)


def check_promises(set_name, objects):
    p = []
    deployment = next(o for (k, _), o in objects.items() if k == "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    proxy = next(c for c in spec["containers"] if c["name"] == "sso-sidecar")
    security = proxy["securityContext"]
    expect(spec["securityContext"]["runAsNonRoot"], "pod runs as non-root", p)
    expect(security["readOnlyRootFilesystem"], "read-only root filesystem", p)
    expect(security["allowPrivilegeEscalation"] is False, "no privilege escalation", p)
    expect(security["capabilities"]["drop"] == ["ALL"], "all capabilities dropped", p)
    expect(proxy["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}, "liveness on /healthz", p)
    expect(proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}, "readiness on /readyz", p)
    expect(pod["metadata"]["annotations"].get("prometheus.io/scrape") == "true", "Prometheus annotations", p)
    expect(any(v["name"] == "tmp" and "emptyDir" in v for v in spec["volumes"]), "writable /tmp", p)
    expect("limits" in proxy["resources"], "resource limits", p)
    config = objects[("ConfigMap", "shop-sso-sso-sidecar")]["data"]["sidecar.toml"]
    service = objects[("Service", "shop-sso-sso-sidecar")]
    expect(service["spec"]["ports"][0]["targetPort"] == "http", "the Service sends to the proxy", p)
    if set_name == "sidecar":
        names = [c["name"] for c in spec["containers"]]
        expect(names == ["sso-sidecar", "shop"], f"proxy and shop in one pod: {names}", p)
        expect('upstream = "http://127.0.0.1:9000"' in config, "upstream is the shop in the pod", p)
        expect(proxy["envFrom"][0]["secretRef"]["name"] == "shop-sso-secrets", "existing secret used", p)
        expect(("Secret", "shop-sso-sso-sidecar") not in objects, "no secret created for an existing one", p)
        expect('tls = { cert = "file:/etc/sso-sidecar-tls/tls.crt"' in config, "TLS in the config", p)
        expect(any(v["name"] == "tls" and v["secret"]["secretName"] == "shop-tls" for v in spec["volumes"]), "TLS secret mounted", p)
        expect(proxy["readinessProbe"]["httpGet"].get("scheme", "HTTP") == "HTTP", "probes stay on the plain admin port", p)
    if set_name == "redis":
        expect('[store]\nkind = "redis"' in config and "server_side_sessions = true" in config, "Redis store", p)
        secret = objects[("Secret", "shop-sso-sso-sidecar")]
        expect("SSO_REDIS_URL" in secret["stringData"], "Redis URL in the secret", p)
        expect("redis://" not in config, "the Redis URL (with password) stays out of the ConfigMap", p)
        expect(("HorizontalPodAutoscaler", "shop-sso-sso-sidecar") in objects, "HPA", p)
        expect(("ServiceMonitor", "shop-sso-sso-sidecar") in objects, "ServiceMonitor", p)
        expect("replicas" not in deployment["spec"], "the HPA owns the replica count", p)
        rules = objects.get(("PrometheusRule", "shop-sso-sso-sidecar"))
        expect(rules is not None, "PrometheusRule", p)
        alerts = {r["alert"] for g in (rules or {"spec": {"groups": []}})["spec"]["groups"] for r in g["rules"]}
        for wanted in ["SsoSidecarIdpDiscoveryFailing", "SsoSidecarRefreshErrorsRising", "SsoSidecarClientSecretExpiring",
                       "SsoSidecarTlsCertificateExpiring",
                       "SsoSidecarUpstream5xx", "SsoSidecarStoreErrors"]:
            expect(wanted in alerts, f"alert {wanted}", p)
        dashboard = objects.get(("ConfigMap", "shop-sso-sso-sidecar-dashboard"))
        expect(dashboard is not None and dashboard["metadata"]["labels"].get("grafana_dashboard") == "1", "Grafana dashboard", p)
        if dashboard is not None:
            panels = json.loads(dashboard["data"]["sso-sidecar.json"])["panels"]
            titles = " ".join(panel["title"] for panel in panels)
            for wanted in ["Logins completed", "refreshes", "Sessions rejected", "Upstream latency", "CPU", "Memory"]:
                expect(wanted in titles, f"dashboard panel {wanted}", p)
    if set_name == "default":
        expect(("PodDisruptionBudget", "shop-sso-sso-sidecar") in objects, "PDB", p)
        expect(("PrometheusRule", "shop-sso-sso-sidecar") not in objects, "no alert rules unless asked", p)
    return [f"{set_name}: {m}" for m in p], config


def metrics_used(objects):
    """The sso-sidecar metric families the alert rules and the dashboard query."""
    text = json.dumps([o for (k, _), o in objects.items() if k in ("PrometheusRule", "ConfigMap")])
    names = set(re.findall(r"sso_sidecar_[a-z_]+", text))
    # Histograms are queried by their series, not their family name.
    return sorted({re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) else n for n in names})


def main():
    if sys.argv[1:] == ["--lint"]:
        problems = lint()
        for problem in problems:
            print(f"helm lint: {problem}", file=sys.stderr)
        print(f"helm lint: {len(VALUE_SETS)} value sets, {len(problems)} problems")
        return 1 if problems else 0
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    problems = lint()
    for set_name, path in VALUE_SETS.items():
        objects = render(path)
        problems += [f"{set_name}: {m}" for m in validate(objects)]
        promise_problems, config = check_promises(set_name, objects)
        problems += promise_problems
        with open(os.path.join(out_dir, f"{set_name}.toml"), "w") as f:
            f.write(config)
        with open(os.path.join(out_dir, f"{set_name}.metrics"), "w") as f:
            f.write("\n".join(metrics_used(objects)))
        print(f"{set_name}: {len(objects)} objects: {', '.join(sorted(k for k, _ in objects))}")
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
