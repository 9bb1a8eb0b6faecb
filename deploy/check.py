#!/usr/bin/env python3
"""Structural checks of the deployment files in deploy/ and of docs/operations.md.

Run by deploy/check.sh, which also runs the external linters (yamllint, kubernetes-validate, hadolint,
systemd-analyze, promtool). This script needs Python >= 3.11 (tomllib) and PyYAML, and checks what those tools
cannot: that the files agree with each other and with koogate itself (metric names and label values in src/, the
configuration keys documented in config/koogate.example.toml, ports, probe paths, mounted secrets, shutdown timing).

    python3 deploy/check.py [--dashboard-rules OUT.yaml]

--dashboard-rules writes the dashboard's PromQL expressions as recording rules, so that `promtool check rules`
can parse them. --configs DIR writes every koogate configuration found in deploy/ to DIR, with its file paths
pointing at DIR/tls.crt, DIR/tls.key, DIR/access-key and DIR/journal-key, for `koogate check`.
Exit status 1 and one line per problem on any failure.
"""

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS_RS = ROOT / "src" / "metrics.rs"
EXAMPLE_CONFIG = ROOT / "config" / "koogate.example.toml"
ALERTS = DEPLOY / "prometheus" / "koogate-alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "koogate-dashboard.json"
UNIT = DEPLOY / "systemd" / "koogate.service"
UNIT_CONFIG = DEPLOY / "systemd" / "koogate.toml"
DOCKERFILE = DEPLOY / "Dockerfile"

# Metrics being added to src/metrics.rs alongside hot reload and certificate/journal reporting. They are allowed
# here before they land so the alerts and dashboard can ship with them; once every name below is registered in
# src/metrics.rs this list is redundant (and can be emptied).
PENDING_METRICS = {
    "koogate_config_reloads_total",
    "koogate_config_last_reload_success_timestamp_seconds",
    "koogate_certificate_expiry_timestamp_seconds",
    "koogate_journal_writes_total",
}
# Configuration keys being added (section, key), allowed before config/koogate.example.toml documents them; same
# rule as above. Empty while every key the deploy files use is documented.
PENDING_CONFIG_KEYS: set[tuple[str, str]] = set()

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SEVERITIES = {"critical", "warning", "info"}
K8S_KINDS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
}
# Defaults from config/koogate.example.toml, used when a configuration leaves the key out.
DEFAULT_SHUTDOWN_GRACE_MS = 10000
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9901"

problems: list[str] = []


def fail(where, message):
    problems.append(f"{rel(where)}: {message}")


def rel(path):
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


# --- parsing ------------------------------------------------------------------------------------------------------


def load_yaml_docs(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as e:
        fail(path, f"YAML does not parse: {e}")
        return []


def check_parse_all():
    """Every YAML and JSON file under deploy/ parses and is not empty."""
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            if not load_yaml_docs(path):
                fail(path, "no YAML document")
        elif path.suffix == ".json":
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                fail(path, f"JSON does not parse: {e}")


def port_of(listen):
    m = re.fullmatch(r"(?:\[[0-9a-fA-F:.]+\]|[^:]+):(\d+)", listen or "")
    return int(m.group(1)) if m else None


def host_of(listen):
    return (listen or "").rsplit(":", 1)[0].strip("[]")


# --- koogate's own facts ------------------------------------------------------------------------------------------


def known_metrics():
    # src/metrics.rs and the per-module metrics it registers (src/<module>/metrics.rs).
    files = [METRICS_RS, *sorted(ROOT.glob("src/*/metrics.rs"))]
    names = {n for f in files for n in re.findall(r'"(koogate_[a-z0-9_]+)"', f.read_text(encoding="utf-8"))}
    if not names:
        fail(METRICS_RS, "no \"koogate_…\" metric name found; has the file moved?")
    return names | PENDING_METRICS


def source_string_literals():
    """Every lower-case string literal in src/: label values such as reasons must be among them."""
    literals = set()
    for path in (ROOT / "src").rglob("*.rs"):
        literals |= set(re.findall(r'"([a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    return literals


def documented_config_keys():
    """(section, key) pairs in config/koogate.example.toml, including commented-out examples."""
    keys, section = set(), ""
    for line in EXAMPLE_CONFIG.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"#?\s*\[\[?([a-z0-9_.\-]+)\]\]?\s*", line)
        if m:
            section = normalise_section(m.group(1))
            continue
        m = re.match(r"#?\s*([a-z0-9_]+)\s*=", line)
        if m:
            keys.add((section, m.group(1)))
    return keys


def normalise_section(name):
    parts = name.split(".")
    if parts[:2] == ["upstream", "routes"] and len(parts) > 2:
        return "upstream.routes.*"
    return name


def flatten_config(config, section=""):
    """(section, key) pairs of a parsed koogate configuration."""
    pairs = set()
    for key, value in config.items():
        if isinstance(value, dict):
            pairs |= flatten_config(value, normalise_section(f"{section}.{key}".strip(".")))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                pairs |= flatten_config(item, f"{section}.{key}".strip("."))
        else:
            pairs.add((section, key))
    return pairs


def check_config_keys(where, config, documented):
    for section, key in sorted(flatten_config(config)):
        if (section, key) not in documented and (section, key) not in PENDING_CONFIG_KEYS:
            fail(where, f"configuration key {section}.{key} is not documented in config/koogate.example.toml")


def parse_toml(where, text):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(where, f"embedded koogate configuration does not parse: {e}")
        return None


def shutdown_budget_ms(config):
    server = config.get("server", {})
    return server.get("drain_delay_ms", 0) + server.get("shutdown_grace_ms", DEFAULT_SHUTDOWN_GRACE_MS)


# --- metrics and label values in alerts, dashboard and docs ---------------------------------------------------------


def metric_tokens(text):
    return set(re.findall(r"\bkoogate_[a-z0-9_]*[a-z0-9]", text))


def base_metric(name, known):
    if name in known:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return name[: -len(suffix)]
    return None


def check_metric_references(known, literals, dashboard_exprs):
    sources = {
        ALERTS: ALERTS.read_text(encoding="utf-8"),
        ALERTS.with_name("koogate-alerts.test.yaml"): ALERTS.with_name("koogate-alerts.test.yaml").read_text(encoding="utf-8"),
        DASHBOARD: DASHBOARD.read_text(encoding="utf-8"),
        OPERATIONS: OPERATIONS.read_text(encoding="utf-8"),
    }
    for path, text in sources.items():
        for token in sorted(metric_tokens(text)):
            if base_metric(token, known) is None:
                fail(path, f"metric {token} does not exist in src/metrics.rs (nor in the pending list of deploy/check.py)")
        # Label values that come from koogate's code: reasons and result codes.
        for label, value in re.findall(r'\b(reason|result_code)\s*(?:=~|!~|=|!=)\s*\\?"([^"\\]*)\\?"', text):
            for alternative in filter(None, value.split("|")):
                if alternative not in literals:
                    fail(path, f'{label} value "{alternative}" does not occur in src/ (a typo, or a renamed label value?)')
    # Coverage: every metric has a dashboard panel and a line in the operations guide.
    dashboard_metrics = {base_metric(t, known) for e in dashboard_exprs for t in metric_tokens(e)}
    documented = {base_metric(t, known) for t in metric_tokens(sources[OPERATIONS])}
    for name in sorted(known):
        if name not in dashboard_metrics:
            fail(DASHBOARD, f"no panel queries {name}: add one")
        if name not in documented:
            fail(OPERATIONS, f"{name} is not described: add it to the metrics table")


# --- Prometheus rules ------------------------------------------------------------------------------------------


def github_anchor(heading):
    anchor = heading.strip().lower()
    anchor = re.sub(r"[^\w\- ]", "", anchor)
    return anchor.replace(" ", "-")


def operations_anchors():
    text = OPERATIONS.read_text(encoding="utf-8")
    return {github_anchor(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


def check_alert_rules(anchors):
    docs = load_yaml_docs(ALERTS)
    if len(docs) != 1 or not isinstance(docs[0], dict) or not isinstance(docs[0].get("groups"), list):
        fail(ALERTS, "expected one document with a `groups` list")
        return
    seen = set()
    for group in docs[0]["groups"]:
        if not group.get("name") or not isinstance(group.get("rules"), list) or not group["rules"]:
            fail(ALERTS, "every group needs a name and rules")
            continue
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            where = f"{rel(ALERTS)} {name}"
            if not name or not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                problems.append(f"{where}: a rule needs alert (or record) and expr")
                continue
            if name in seen:
                problems.append(f"{where}: duplicate rule name")
            seen.add(name)
            if "alert" not in rule:
                continue
            if rule.get("for") is not None and not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(rule["for"])):
                problems.append(f"{where}: `for` is not a Prometheus duration")
            if rule.get("labels", {}).get("severity") not in SEVERITIES:
                problems.append(f"{where}: labels.severity must be one of {sorted(SEVERITIES)}")
            annotations = rule.get("annotations", {})
            for key in ("summary", "description", "runbook"):
                if not annotations.get(key):
                    problems.append(f"{where}: annotations.{key} missing")
            runbook = annotations.get("runbook", "")
            m = re.fullmatch(r"docs/operations\.md#([\w\-]+)", runbook)
            if runbook and (not m or m.group(1) not in anchors):
                problems.append(f"{where}: runbook {runbook} is not a heading of docs/operations.md")
            if name not in OPERATIONS.read_text(encoding="utf-8"):
                problems.append(f"{where}: the alert is not explained in docs/operations.md")


# --- Grafana dashboard -----------------------------------------------------------------------------------------


def check_dashboard():
    """Returns the PromQL expressions of the dashboard's panels."""
    try:
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return []
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            fail(DASHBOARD, f"missing top-level `{key}`")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        fail(DASHBOARD, "needs a `datasource` variable of type datasource, so it imports into any Grafana")
    exprs, ids = [], set()
    for panel in dashboard.get("panels", []):
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            fail(DASHBOARD, f"panel {title!r}: duplicate id {panel.get('id')}")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            fail(DASHBOARD, f"panel {title!r}: gridPos must have integer h, w, x, y with x + w <= 24")
        if panel.get("type") == "row":
            continue
        if not panel.get("description"):
            fail(DASHBOARD, f"panel {title!r}: no description")
        targets = panel.get("targets") or []
        if not targets:
            fail(DASHBOARD, f"panel {title!r}: no query")
        for target in targets:
            if target.get("datasource", {}).get("uid") != "${datasource}":
                fail(DASHBOARD, f"panel {title!r}: query datasource must be ${{datasource}}")
            expr = target.get("expr", "")
            if "koogate_" not in expr:
                fail(DASHBOARD, f"panel {title!r}: query {expr!r} reads no koogate metric")
            exprs.append(expr)
    return exprs


def dashboard_rules(exprs):
    """The dashboard's expressions as recording rules, Grafana's variables replaced by plain values."""
    replaced = [
        e.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1d")
        .replace("$instance", ".*")
        for e in exprs
    ]
    rules = [{"record": f"koogate_dashboard:query{i}", "expr": e} for i, e in enumerate(replaced)]
    return {"groups": [{"name": "koogate-dashboard-queries", "rules": rules}]}


# --- Kubernetes ------------------------------------------------------------------------------------------------


def probe_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def mount_for(path, mounts):
    """The volume mount holding `path` and the path inside the volume."""
    for m in sorted(mounts, key=lambda m: -len(m["mountPath"])):
        prefix = m["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            return m, path[len(prefix):]
    return None, None


def check_container_security(where, container):
    sc = container.get("securityContext", {})
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: securityContext.allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: securityContext.readOnlyRootFilesystem must be true")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        problems.append(f"{where}: securityContext.capabilities.drop must include ALL")
    if not container.get("resources", {}).get("requests"):
        problems.append(f"{where}: resources.requests missing")


def prestop_sleep_s(container):
    pre = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre:
        return int(pre["sleep"].get("seconds", 0))
    command = pre.get("exec", {}).get("command", [])
    if len(command) == 2 and command[0] == "sleep":
        return int(command[1])
    return 0


def check_kubernetes(documented):
    files = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    if not files:
        fail(DEPLOY / "kubernetes", "no manifest")
    for path in files:
        docs = load_yaml_docs(path)
        by_kind = {}
        for doc in docs:
            kind, api = doc.get("kind"), doc.get("apiVersion")
            name = doc.get("metadata", {}).get("name")
            if kind not in K8S_KINDS:
                fail(path, f"unexpected kind {kind}")
                continue
            if api != K8S_KINDS[kind]:
                fail(path, f"{kind} {name}: apiVersion {api}, expected {K8S_KINDS[kind]}")
            if not name:
                fail(path, f"{kind} without metadata.name")
            if name in by_kind.setdefault(kind, {}):
                fail(path, f"{kind} {name} defined twice")
            by_kind[kind][name] = doc
        deployments = by_kind.get("Deployment", {})
        if not deployments:
            fail(path, "no Deployment")
        for name, deployment in deployments.items():
            check_deployment(path, name, deployment, by_kind, documented)


def check_deployment(path, name, deployment, by_kind, documented):
    where = f"{rel(path)} Deployment {name}"
    spec = deployment.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot must be true")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile must be RuntimeDefault")
    init = pod.get("initContainers", [])
    main = pod.get("containers", [])
    sidecars = [c for c in init if c.get("name") == "koogate"]
    if len(sidecars) != 1 or sidecars[0].get("restartPolicy") != "Always":
        problems.append(f"{where}: koogate must be an init container with restartPolicy: Always (native sidecar)")
        return
    if any(c.get("name") == "koogate" for c in main):
        problems.append(f"{where}: koogate must not also be a regular container")
    if not main:
        problems.append(f"{where}: no app container beside koogate")
    for c in init + main:
        check_container_security(f"{where} container {c.get('name')}", c)
    koogate = sidecars[0]
    cw = f"{where} container koogate"
    mounts = koogate.get("volumeMounts", [])
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    env = {e["name"]: e for e in koogate.get("env", [])}

    # The configuration: KOOGATE_CONFIG → a mounted ConfigMap key in this file.
    config_path = env.get("KOOGATE_CONFIG", {}).get("value")
    if not config_path:
        problems.append(f"{cw}: KOOGATE_CONFIG must name the configuration file")
        return
    mount, inner = mount_for(config_path, mounts)
    volume = volumes.get(mount["name"]) if mount else None
    cm_name = (volume or {}).get("configMap", {}).get("name")
    cm = by_kind.get("ConfigMap", {}).get(cm_name)
    if not cm or inner not in cm.get("data", {}):
        problems.append(f"{cw}: {config_path} is not a key of a ConfigMap defined in this file")
        return
    if mount.get("subPath"):
        problems.append(f"{cw}: mount the configuration without subPath, or updates never reach the file")
    config = parse_toml(path, cm["data"][inner])
    if config is None:
        return
    check_config_keys(f"{path} ConfigMap {cm_name}", config, documented)

    # Ports and probes agree with the listeners.
    ports = {p.get("name"): p.get("containerPort") for p in koogate.get("ports", [])}
    https_port = port_of(config.get("server", {}).get("listen"))
    admin_listen = config.get("admin", {}).get("listen", DEFAULT_ADMIN_LISTEN)
    admin_port = port_of(admin_listen)
    if https_port is None or https_port not in ports.values():
        problems.append(f"{cw}: server.listen port {https_port} is not a containerPort")
    if ports.get("admin") != admin_port:
        problems.append(f"{cw}: the `admin` containerPort must be admin.listen's port {admin_port}")
    if host_of(admin_listen) not in ("0.0.0.0", "::"):
        problems.append(f"{cw}: admin.listen {admin_listen} is not reachable by the kubelet's probes; use 0.0.0.0")
    for probe, expected in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
        get = koogate.get(probe, {}).get("httpGet")
        if not get:
            problems.append(f"{cw}: {probe} must be an httpGet on the admin port")
            continue
        if get.get("path") != expected:
            problems.append(f"{cw}: {probe} path must be {expected}")
        if probe_port(koogate, get.get("port")) != admin_port:
            problems.append(f"{cw}: {probe} port must be the admin port {admin_port}")

    # Every file the configuration names is mounted from a volume that has it.
    files = {
        "server.cert_chain_file": config.get("server", {}).get("cert_chain_file"),
        "server.private_key_file": config.get("server", {}).get("private_key_file"),
        "store.journal_key_file": config.get("store", {}).get("journal_key_file"),
    }
    for i, key in enumerate(config.get("access_keys", [])):
        files[f"access_keys[{i}].file"] = key.get("file")
        if key.get("env") and key["env"] not in env:
            problems.append(f"{cw}: access_keys[{i}].env {key['env']} is not set in the container")
    store = config.get("store", {})
    for key in ("journal_key_env", "redis_url_env"):
        if store.get(key) and store[key] not in env:
            problems.append(f"{cw}: store.{key} {store[key]} is not set in the container")
    for key, file in files.items():
        if not file:
            continue
        if not file.startswith("/"):
            problems.append(f"{cw}: {key} {file} should be absolute")
            continue
        mount, inner = mount_for(file, mounts)
        volume = volumes.get(mount["name"]) if mount else None
        secret_name = (volume or {}).get("secret", {}).get("secretName")
        if not secret_name:
            problems.append(f"{cw}: {key} {file} is not inside a mounted Secret volume")
            continue
        secret = by_kind.get("Secret", {}).get(secret_name)
        if secret is not None and inner not in {**secret.get("data", {}), **secret.get("stringData", {})}:
            problems.append(f"{cw}: Secret {secret_name} has no key {inner} for {key}")

    # The state directory is writable and, for the local store, persistent and never opened by two pods.
    data_dir = store.get("data_dir", "koogate-data")
    mount, _ = mount_for(data_dir.rstrip("/") + "/x", mounts)
    if not mount or mount.get("readOnly"):
        problems.append(f"{cw}: store.data_dir {data_dir} must be a writable volume mount")
    elif store.get("backend", "local") == "local":
        claim = volumes.get(mount["name"], {}).get("persistentVolumeClaim", {}).get("claimName")
        if claim not in by_kind.get("PersistentVolumeClaim", {}):
            problems.append(f"{cw}: the local store needs a PersistentVolumeClaim defined in this file")
        if spec.get("replicas", 1) > 1 or spec.get("strategy", {}).get("type") != "Recreate":
            problems.append(f"{where}: the local store allows one replica with strategy Recreate; use redis for more")
    elif store.get("backend") == "redis" and spec.get("replicas", 1) < 2:
        problems.append(f"{where}: the redis variant should run several replicas")

    # Shutdown: the app's preStop, then koogate's drain and grace, all within the grace period.
    grace_s = pod.get("terminationGracePeriodSeconds", 30)
    needed_ms = max(prestop_sleep_s(c) for c in main) * 1000 + shutdown_budget_ms(config)
    if grace_s * 1000 <= needed_ms:
        problems.append(
            f"{where}: terminationGracePeriodSeconds {grace_s} must exceed preStop + drain_delay_ms + "
            f"shutdown_grace_ms ({needed_ms} ms)"
        )
    if "drain_delay_ms" not in config.get("server", {}):
        problems.append(f"{cw}: set server.drain_delay_ms so load balancers notice before the listener closes")

    # The Service reaches koogate's HTTPS port; a NetworkPolicy, if any, admits it.
    services = [s for s in by_kind.get("Service", {}).values()
                if s.get("spec", {}).get("selector", {}).items() <= pod_labels.items()]
    if not services:
        problems.append(f"{where}: no Service selects the pod")
    for service in services:
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort")
            if probe_port(koogate, target) != https_port:
                problems.append(f"{where}: Service port {port.get('port')} targets {target}, not koogate's HTTPS port")
    for policy in by_kind.get("NetworkPolicy", {}).values():
        allowed = {p.get("port") for rule in policy.get("spec", {}).get("ingress", []) for p in rule.get("ports", [])}
        if https_port not in allowed:
            problems.append(f"{where}: NetworkPolicy {policy['metadata']['name']} does not admit port {https_port}")


# --- systemd ------------------------------------------------------------------------------------------------------

UNIT_REQUIRED = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "MemoryDenyWriteExecute": "yes",
    "Restart": "on-failure",
    "StateDirectory": "koogate",
}


def parse_unit(text):
    directives = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def seconds(value):
    m = re.fullmatch(r"(\d+)\s*(ms|s|min)?", value)
    if not m:
        return None
    n = int(m.group(1))
    return {"ms": n / 1000, "min": n * 60}.get(m.group(2), n)


def check_systemd(documented):
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    for key, value in UNIT_REQUIRED.items():
        if value not in unit.get(key, []):
            fail(UNIT, f"{key}={value} missing")
    if "@system-service" not in unit.get("SystemCallFilter", []):
        fail(UNIT, "SystemCallFilter=@system-service missing")
    if "yes" not in unit.get("DynamicUser", []) and not unit.get("User"):
        fail(UNIT, "run as DynamicUser=yes or a dedicated User=")
    if not any("kill -HUP $MAINPID" in v for v in unit.get("ExecReload", [])):
        fail(UNIT, "ExecReload must send SIGHUP to $MAINPID")
    exec_start = " ".join(unit.get("ExecStart", []))
    m = re.search(r"\brun\b.*--config\s+(\S+)", exec_start)
    if not m:
        fail(UNIT, "ExecStart must be `koogate run --config FILE`")
    config = parse_toml(UNIT_CONFIG, UNIT_CONFIG.read_text(encoding="utf-8"))
    if config is None:
        return
    check_config_keys(UNIT_CONFIG, config, documented)
    credentials = {v.split(":", 1)[0] for v in unit.get("LoadCredential", [])}
    for path in re.findall(r"'/run/credentials/koogate\.service/([^']+)'", repr(config)):
        if path not in credentials:
            fail(UNIT_CONFIG, f"credential {path} is not loaded by a LoadCredential= line of koogate.service")
    stop = seconds(unit.get("TimeoutStopSec", ["90"])[-1])
    if stop is None or stop * 1000 <= shutdown_budget_ms(config):
        fail(UNIT, f"TimeoutStopSec must exceed drain_delay_ms + shutdown_grace_ms ({shutdown_budget_ms(config)} ms)")
    data_dir = config.get("store", {}).get("data_dir", "")
    writable = {f"/var/lib/{d}" for d in unit.get("StateDirectory", [])} | set(unit.get("ReadWritePaths", []))
    if data_dir.rstrip("/") not in writable:
        fail(UNIT_CONFIG, f"store.data_dir {data_dir} is not the unit's StateDirectory or a ReadWritePaths entry")
    for key in ("server", "plain_http"):
        port = port_of(config.get(key, {}).get("listen"))
        if port is not None and port < 1024:
            fail(UNIT_CONFIG, f"{key}.listen port {port} needs CAP_NET_BIND_SERVICE, which the unit does not grant")


# --- Dockerfile ---------------------------------------------------------------------------------------------------


def check_dockerfile():
    lines, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    instructions = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    if len(stages) < 2:
        fail(DOCKERFILE, "expected a multi-stage build (a build stage and a runtime stage)")
        return
    final = instructions[stages[-1]:]
    users = [arg for op, arg in final if op == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        fail(DOCKERFILE, "the runtime stage must end with a non-root USER")
    exposed = {p.split("/")[0] for op, arg in final if op == "EXPOSE" for p in arg.split()}
    for port in ("8443", "9901"):
        if port not in exposed:
            fail(DOCKERFILE, f"EXPOSE {port} missing")
    if not any(op == "COPY" and "--from=" in arg for op, arg in final):
        fail(DOCKERFILE, "the runtime stage must COPY the binary --from the build stage")
    if not any(op == "ENTRYPOINT" and "koogate" in arg for op, arg in final):
        fail(DOCKERFILE, "ENTRYPOINT must be koogate")
    if not any(op == "RUN" and "cargo build --release --locked" in arg for op, arg in instructions):
        fail(DOCKERFILE, "the build stage must run `cargo build --release --locked`")
    # Everything the build stage copies exists and is let through by the Dockerfile's ignore file.
    ignore = DOCKERFILE.with_name("Dockerfile.dockerignore").read_text(encoding="utf-8")
    allowed = {l[1:].strip().rstrip("/") for l in ignore.splitlines() if l.startswith("!")}
    for op, arg in instructions[: stages[-1]]:
        if op != "COPY" or "--from=" in arg:
            continue
        for source in arg.split()[:-1]:
            if source.startswith("--"):
                continue
            if not (ROOT / source).exists():
                fail(DOCKERFILE, f"COPY source {source} does not exist in the repository")
            if source.rstrip("/") not in allowed:
                fail(DOCKERFILE, f"COPY source {source} is excluded by Dockerfile.dockerignore")
    # The Rust toolchain of the image satisfies Cargo.toml's rust-version.
    m = re.search(r"ARG RUST_VERSION=(\d+)\.(\d+)", DOCKERFILE.read_text(encoding="utf-8"))
    need = re.search(r'rust-version\s*=\s*"(\d+)\.(\d+)', (ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    if m and need and tuple(map(int, m.groups())) < tuple(map(int, need.groups())):
        fail(DOCKERFILE, f"RUST_VERSION {m.group(1)}.{m.group(2)} is older than Cargo.toml's rust-version")


# --- the configurations themselves, for `koogate check` -------------------------------------------------------------

CONFIG_FILE_KEYS = {
    "cert_chain_file": "tls.crt",
    "private_key_file": "tls.key",
    "file": "access-key",
    "journal_key_file": "journal-key",
}


def embedded_configs():
    """(name, TOML text) of every koogate configuration in deploy/."""
    configs = [("systemd-koogate.toml", UNIT_CONFIG.read_text(encoding="utf-8"))]
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in load_yaml_docs(path):
            if doc.get("kind") == "ConfigMap":
                for key, text in doc.get("data", {}).items():
                    if key.endswith(".toml"):
                        configs.append((f"{path.stem}-{key}", text))
    return configs


def write_configs(out):
    out.mkdir(parents=True, exist_ok=True)
    for name, text in embedded_configs():
        def local(m):
            key = m.group(2)
            target = out / (f"data-{Path(name).stem}" if key == "data_dir" else CONFIG_FILE_KEYS[key])
            return f'{m.group(1)}"{target}"'
        keys = "|".join([*CONFIG_FILE_KEYS, "data_dir"])
        text = re.sub(rf'^(\s*({keys})\s*=\s*)"[^"]*"', local, text, flags=re.M)
        (out / name).write_text(text, encoding="utf-8")


# --- docs/operations.md -------------------------------------------------------------------------------------------


def check_operations_links(anchors):
    text = OPERATIONS.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if path:
            if not (OPERATIONS.parent / path).exists():
                fail(OPERATIONS, f"link to {path}, which does not exist")
        elif anchor not in anchors:
            fail(OPERATIONS, f"link to #{anchor}, which is not a heading")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboard-rules", type=Path, help="write the dashboard's queries as recording rules")
    parser.add_argument("--configs", type=Path, help="write the koogate configurations, for `koogate check`")
    args = parser.parse_args()

    documented = documented_config_keys()
    known = known_metrics()
    literals = source_string_literals()
    anchors = operations_anchors()

    check_parse_all()
    check_alert_rules(anchors)
    exprs = check_dashboard()
    check_metric_references(known, literals, exprs)
    check_kubernetes(documented)
    check_systemd(documented)
    check_dockerfile()
    check_operations_links(anchors)
    if args.dashboard_rules:
        args.dashboard_rules.write_text(yaml.safe_dump(dashboard_rules(exprs), sort_keys=False), encoding="utf-8")
    if args.configs:
        write_configs(args.configs)

    for problem in problems:
        print(f"error: {problem}")
    if problems:
        return 1
    print(f"deploy/check.py: {len(exprs)} dashboard queries, {len(known)} metrics, "
          f"{len(list((DEPLOY / 'kubernetes').glob('*.yaml')))} Kubernetes files, systemd unit and Dockerfile: consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
