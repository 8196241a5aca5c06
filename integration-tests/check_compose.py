#!/usr/bin/env python3
"""Checks that docker-compose.yml parses and that its services, environment, secrets, healthchecks and Prometheus targets agree with each other."""

import base64
import os
import re
import sys
from urllib.parse import urlparse

import yaml

# The services the file must define, no more and no fewer.
EXPECTED_SERVICES = {"postgres", "kafka", "topic-init", "provider-sim", "payments", "ledger", "notifier",
                     "gateway", "prometheus"}
# Long-running keel services: binary, whether it owns a database.
KEEL_SERVICES = {"provider-sim": False, "payments": True, "ledger": True, "notifier": True, "gateway": True}
KEEL_DOCKERFILE = "deploy/Dockerfile"

# The environment each keel container may set (docs: the STACK.md contract).
COMMON_VARS = {"KEEL_LOG_LEVEL", "KEEL_HTTP_ADDRESS", "KEEL_HTTP_PORT", "KEEL_HTTP_THREADS", "KEEL_INSTANCE_ID"}
DB_VARS = {"KEEL_DATABASE_URL", "KEEL_DATABASE_PASSWORD_FILE", "KEEL_DATABASE_POOL_SIZE"}
KAFKA_VARS = {"KEEL_KAFKA_BROKERS"}
ALLOWED_VARS = {
    "provider-sim": COMMON_VARS | KAFKA_VARS
    | {"KEEL_SIM_PROVIDER_A_PORT", "KEEL_SIM_PROVIDER_B_PORT", "KEEL_SIM_RISK_PORT",
       "KEEL_SIM_API_KEY_FILE", "KEEL_SIM_SEED", "KEEL_FAILPOINTS"},
    "payments": COMMON_VARS | DB_VARS | KAFKA_VARS
    | {"KEEL_PAYMENTS_PROVIDER_URL", "KEEL_PAYMENTS_PROVIDER_API_KEY_FILE", "KEEL_PAYMENTS_LEASE_MS",
       "KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS", "KEEL_FAILPOINTS",
       "KEEL_PAYMENTS_PROVIDER_B_URL", "KEEL_PAYMENTS_PROVIDER_B_API_KEY_FILE", "KEEL_PAYMENTS_RISK_URL",
       "KEEL_PAYMENTS_RISK_API_KEY_FILE", "KEEL_PAYMENTS_ROUTES", "KEEL_PAYMENTS_UNKNOWN_DEADLINE_MS",
       "KEEL_PAYMENTS_RISK_TIMEOUT_MS", "KEEL_PAYMENTS_LOCAL_RISK_LIMITS"},
    "ledger": COMMON_VARS | DB_VARS | KAFKA_VARS
    | {"KEEL_LEDGER_FEES", "KEEL_LEDGER_AUDIT_INTERVAL_MS", "KEEL_FAILPOINTS"},
    "notifier": COMMON_VARS | DB_VARS | KAFKA_VARS
    | {"KEEL_NOTIFIER_INTERNAL_TOKEN_FILE", "KEEL_NOTIFIER_WORKERS", "KEEL_NOTIFIER_LEASE_MS",
       "KEEL_NOTIFIER_DELIVERY_TIMEOUT_MS", "KEEL_NOTIFIER_CONNECT_TIMEOUT_MS", "KEEL_NOTIFIER_DNS_TIMEOUT_MS",
       "KEEL_NOTIFIER_MAX_RESPONSE_BYTES", "KEEL_NOTIFIER_RETRY_SCHEDULE", "KEEL_NOTIFIER_RETRY_JITTER_PCT",
       "KEEL_NOTIFIER_DISABLE_AFTER", "KEEL_NOTIFIER_MAX_ENDPOINTS", "KEEL_NOTIFIER_POLL_MS",
       "KEEL_NOTIFIER_METRICS_INTERVAL_MS", "KEEL_NOTIFIER_KEEP_SUCCEEDED", "KEEL_NOTIFIER_KEEP_DEAD",
       "KEEL_NOTIFIER_KEEP_INBOX", "KEEL_FAILPOINTS"},
    "gateway": COMMON_VARS | DB_VARS | KAFKA_VARS
    | {"KEEL_GATEWAY_LEDGER_URL", "KEEL_GATEWAY_LEDGER_TIMEOUT_MS", "KEEL_GATEWAY_NOTIFIER_URL",
       "KEEL_GATEWAY_NOTIFIER_TIMEOUT_MS", "KEEL_NOTIFIER_INTERNAL_TOKEN_FILE", "KEEL_FAILPOINTS"},
    "topic-init": {"KEEL_LOG_LEVEL", "KEEL_KAFKA_BROKERS", "KEEL_TOPIC_PARTITIONS"},
}
REQUIRED_VARS = {
    "provider-sim": {"KEEL_HTTP_ADDRESS", "KEEL_HTTP_PORT", "KEEL_SIM_PROVIDER_A_PORT", "KEEL_SIM_PROVIDER_B_PORT",
                     "KEEL_SIM_RISK_PORT", "KEEL_SIM_API_KEY_FILE"},
    "payments": {"KEEL_HTTP_ADDRESS", "KEEL_HTTP_PORT", "KEEL_DATABASE_URL", "KEEL_DATABASE_PASSWORD_FILE",
                 "KEEL_KAFKA_BROKERS", "KEEL_PAYMENTS_PROVIDER_URL", "KEEL_PAYMENTS_PROVIDER_API_KEY_FILE"},
    "ledger": {"KEEL_HTTP_ADDRESS", "KEEL_HTTP_PORT", "KEEL_DATABASE_URL", "KEEL_DATABASE_PASSWORD_FILE",
               "KEEL_KAFKA_BROKERS"},
    "notifier": {"KEEL_HTTP_ADDRESS", "KEEL_HTTP_PORT", "KEEL_DATABASE_URL", "KEEL_DATABASE_PASSWORD_FILE",
                 "KEEL_KAFKA_BROKERS", "KEEL_NOTIFIER_INTERNAL_TOKEN_FILE"},
    "gateway": {"KEEL_HTTP_ADDRESS", "KEEL_HTTP_PORT", "KEEL_DATABASE_URL", "KEEL_DATABASE_PASSWORD_FILE",
                "KEEL_KAFKA_BROKERS"},
    "topic-init": {"KEEL_KAFKA_BROKERS"},
}
# A variable whose name says it holds a secret must be a *_FILE pointing at a compose secret.
SECRETISH = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN")
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


class Checker:
    def __init__(self, path):
        self.path = path
        self.base = os.path.dirname(os.path.abspath(path))
        self.problems = []

    def problem(self, where, msg):
        self.problems.append(f"{where}: {msg}")

    def file_exists(self, rel):
        return os.path.isfile(os.path.join(self.base, rel))

    # ---- helpers over the parsed file -------------------------------------------------
    @staticmethod
    def env_of(svc):
        env = svc.get("environment") or {}
        if isinstance(env, list):  # the KEY=value list form
            out = {}
            for item in env:
                k, _, v = str(item).partition("=")
                out[k] = v
            return out
        return {str(k): ("" if v is None else str(v)) for k, v in env.items()}

    @staticmethod
    def secrets_of(svc):
        out = set()
        for s in svc.get("secrets") or []:
            out.add(s["source"] if isinstance(s, dict) else str(s))
        return out

    @staticmethod
    def depends_of(svc):
        dep = svc.get("depends_on") or {}
        if isinstance(dep, list):
            return {d: "service_started" for d in dep}
        return {k: (v or {}).get("condition", "service_started") for k, v in dep.items()}

    @staticmethod
    def command_of(svc):
        cmd = svc.get("command")
        if cmd is None:
            return []
        return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]

    @staticmethod
    def healthcheck_text(svc):
        test = (svc.get("healthcheck") or {}).get("test")
        if test is None:
            return ""
        return test if isinstance(test, str) else " ".join(str(t) for t in test)

    def reaches(self, services, start, target, seen=None):
        """True when start depends on target, directly or through other services."""
        seen = seen or set()
        for dep in self.depends_of(services.get(start, {})):
            if dep == target:
                return True
            if dep not in seen:
                seen.add(dep)
                if self.reaches(services, dep, target, seen):
                    return True
        return False

    # ---- the checks ---------------------------------------------------------------------
    def run(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            self.problem(self.path, f"cannot be read as YAML: {e}")
            return
        if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
            self.problem(self.path, "has no 'services' mapping")
            return
        services = doc["services"]
        top_secrets = doc.get("secrets") or {}
        top_volumes = doc.get("volumes") or {}

        names = set(services)
        for missing in sorted(EXPECTED_SERVICES - names):
            self.problem("services", f"'{missing}' is missing")
        for extra in sorted(names - EXPECTED_SERVICES):
            self.problem("services", f"'{extra}' is not expected; add it to check_compose.py if it is new")

        for name, svc in services.items():
            if not isinstance(svc, dict):
                self.problem(name, "is not a mapping")
                continue
            self.check_common(name, svc, services, top_secrets, top_volumes)
        self.check_top_secrets(services, top_secrets)
        if EXPECTED_SERVICES <= names:
            self.check_keel(services)
            self.check_postgres(services)
            self.check_kafka(services)
            self.check_prometheus(services)

    def check_common(self, name, svc, services, top_secrets, top_volumes):
        if "image" not in svc and "build" not in svc:
            self.problem(name, "has neither image nor build")
        env = self.env_of(svc)
        my_secrets = self.secrets_of(svc)
        for s in sorted(my_secrets):
            if s not in top_secrets:
                self.problem(name, f"uses secret '{s}' that the top-level secrets do not define")
        for var, value in env.items():
            if not SECRETISH.search(var):
                continue
            if not var.endswith("_FILE"):
                self.problem(name, f"{var} carries a secret inline; use {var}_FILE with a compose secret")
                continue
            m = re.fullmatch(r"/run/secrets/([A-Za-z0-9_.-]+)", value)
            if not m:
                self.problem(name, f"{var}={value} is not a /run/secrets/<name> path")
            elif m.group(1) not in my_secrets:
                self.problem(name, f"{var} reads secret '{m.group(1)}' that the service does not mount")
        for dep, cond in self.depends_of(svc).items():
            if dep not in services:
                self.problem(name, f"depends on unknown service '{dep}'")
            if cond not in DEPENDS_CONDITIONS:
                self.problem(name, f"depends_on {dep}: unknown condition '{cond}'")
            elif cond == "service_healthy" and "healthcheck" not in services.get(dep, {}):
                self.problem(name, f"waits for {dep} to be healthy but {dep} has no healthcheck")
        for vol in svc.get("volumes") or []:
            src = vol.split(":", 1)[0] if isinstance(vol, str) else str(vol.get("source", ""))
            if src.startswith((".", "/")):
                if src.startswith(".") and not os.path.exists(os.path.join(self.base, src)):
                    self.problem(name, f"mounts {src}, which does not exist")
            elif src and src not in top_volumes:
                self.problem(name, f"mounts volume '{src}' that the top-level volumes do not declare")

    def check_top_secrets(self, services, top_secrets):
        used = set()
        for svc in services.values():
            if isinstance(svc, dict):
                used |= self.secrets_of(svc)
        for name, spec in top_secrets.items():
            if not isinstance(spec, dict) or not spec.get("file"):
                self.problem(f"secrets.{name}", "must come from a file (no inline values)")
            if name not in used:
                self.problem(f"secrets.{name}", "is defined but no service uses it")

    def check_keel(self, services):
        ports = {}
        for name in list(KEEL_SERVICES) + ["topic-init"]:
            svc = services[name]
            env = self.env_of(svc)
            build = svc.get("build") or {}
            dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
            if dockerfile != KEEL_DOCKERFILE:
                self.problem(name, f"must be built from {KEEL_DOCKERFILE} (build.dockerfile is {dockerfile!r})")
            elif not self.file_exists(KEEL_DOCKERFILE):
                self.problem(name, f"{KEEL_DOCKERFILE} does not exist")
            for var in sorted(set(env) - ALLOWED_VARS[name]):
                self.problem(name, f"sets {var}, which keel-{name} does not read (STACK.md)")
            for var in sorted(REQUIRED_VARS[name] - set(env)):
                self.problem(name, f"does not set {var}")
            cmd = self.command_of(svc)
            want = ["keelctl", "topics", "ensure"] if name == "topic-init" else [f"keel-{name}"]
            if cmd[: len(want)] != want:
                self.problem(name, f"command is {cmd}, expected {want}")
            if name == "topic-init":
                if svc.get("restart", "no") not in ("no", False):
                    self.problem(name, "is a one-shot job and must not restart")
                continue
            port = env.get("KEEL_HTTP_PORT", "")
            ports[name] = port
            if env.get("KEEL_HTTP_ADDRESS") not in ("0.0.0.0", "::"):
                self.problem(name, "KEEL_HTTP_ADDRESS must be 0.0.0.0 in a container (other containers connect)")
            hc = self.healthcheck_text(svc)
            if f":{port}/readyz" not in hc:
                self.problem(name, f"healthcheck must ask /readyz on KEEL_HTTP_PORT {port} (it is: {hc!r})")
            if KEEL_SERVICES[name]:
                self.check_db_url(name, env, services)
            if "KEEL_KAFKA_BROKERS" in env:
                self.check_brokers(name, env["KEEL_KAFKA_BROKERS"], services)
        self.check_brokers("topic-init", self.env_of(services["topic-init"]).get("KEEL_KAFKA_BROKERS", ""), services)
        if self.depends_of(services["topic-init"]).get("kafka") != "service_healthy":
            self.problem("topic-init", "must wait for kafka: service_healthy")
        for name in ("payments", "ledger", "notifier", "gateway"):
            if self.depends_of(services[name]).get("topic-init") != "service_completed_successfully":
                self.problem(name, "must wait for topic-init: service_completed_successfully (topics first)")

        # payments reaches provider A of provider-sim with the key the simulator expects.
        pay = self.env_of(services["payments"])
        sim = self.env_of(services["provider-sim"])
        url = urlparse(pay.get("KEEL_PAYMENTS_PROVIDER_URL", ""))
        if url.hostname != "provider-sim" or str(url.port) != sim.get("KEEL_SIM_PROVIDER_A_PORT"):
            self.problem("payments", f"KEEL_PAYMENTS_PROVIDER_URL {url.geturl()!r} must be "
                         f"http://provider-sim:{sim.get('KEEL_SIM_PROVIDER_A_PORT')}")
        if pay.get("KEEL_PAYMENTS_PROVIDER_API_KEY_FILE") != sim.get("KEEL_SIM_API_KEY_FILE"):
            self.problem("payments", "KEEL_PAYMENTS_PROVIDER_API_KEY_FILE must be the simulator's KEEL_SIM_API_KEY_FILE")
        # Provider B and the risk API are the simulator's other two listeners, same key.
        for url_var, key_var, port_var in (
                ("KEEL_PAYMENTS_PROVIDER_B_URL", "KEEL_PAYMENTS_PROVIDER_B_API_KEY_FILE", "KEEL_SIM_PROVIDER_B_PORT"),
                ("KEEL_PAYMENTS_RISK_URL", "KEEL_PAYMENTS_RISK_API_KEY_FILE", "KEEL_SIM_RISK_PORT")):
            if url_var not in pay:
                continue
            u = urlparse(pay[url_var])
            if u.hostname != "provider-sim" or str(u.port) != sim.get(port_var):
                self.problem("payments", f"{url_var} {u.geturl()!r} must be http://provider-sim:{sim.get(port_var)}")
            if pay.get(key_var) != sim.get("KEEL_SIM_API_KEY_FILE"):
                self.problem("payments", f"{key_var} must be the simulator's KEEL_SIM_API_KEY_FILE")
        # The admin port and the three API listeners are four distinct ports.
        sim_ports = [sim.get(v) for v in ("KEEL_HTTP_PORT", "KEEL_SIM_PROVIDER_A_PORT",
                                          "KEEL_SIM_PROVIDER_B_PORT", "KEEL_SIM_RISK_PORT")]
        if len(set(sim_ports)) != len(sim_ports):
            self.problem("provider-sim", "KEEL_HTTP_PORT, KEEL_SIM_PROVIDER_A_PORT, KEEL_SIM_PROVIDER_B_PORT and "
                         f"KEEL_SIM_RISK_PORT must all differ (they are {sim_ports})")
        # The gateway's balance endpoints reach the ledger's internal API.
        ledger_url = urlparse(self.env_of(services["gateway"]).get("KEEL_GATEWAY_LEDGER_URL", ""))
        ledger_port = self.env_of(services["ledger"]).get("KEEL_HTTP_PORT")
        if ledger_url.hostname != "ledger" or str(ledger_url.port) != ledger_port:
            self.problem("gateway", f"KEEL_GATEWAY_LEDGER_URL {ledger_url.geturl()!r} must be "
                         f"http://ledger:{ledger_port}")
        self.check_notifier(services)
        self.keel_ports = ports

    def check_notifier(self, services):
        """The gateway reaches the notifier's internal API with the token the notifier reads; the
        notifier's port stays inside the compose network and no SSRF allow-list is opened."""
        gw = self.env_of(services["gateway"])
        nt = self.env_of(services["notifier"])
        url = urlparse(gw.get("KEEL_GATEWAY_NOTIFIER_URL", ""))
        if url.hostname != "notifier" or str(url.port) != nt.get("KEEL_HTTP_PORT"):
            self.problem("gateway", f"KEEL_GATEWAY_NOTIFIER_URL {url.geturl()!r} must be "
                         f"http://notifier:{nt.get('KEEL_HTTP_PORT')}")
        if gw.get("KEEL_NOTIFIER_INTERNAL_TOKEN_FILE") != nt.get("KEEL_NOTIFIER_INTERNAL_TOKEN_FILE"):
            self.problem("gateway", "KEEL_NOTIFIER_INTERNAL_TOKEN_FILE must be the notifier's own token file")
        if services["notifier"].get("ports"):
            self.problem("notifier", "must not publish a port: its internal API is for the gateway only")
        for var in ("KEEL_NOTIFIER_ALLOW_CIDRS", "KEEL_NOTIFIER_ALLOW_HTTP"):
            if var in nt:
                self.problem("notifier", f"sets {var}: merchants' endpoints must be public https URLs here")

    def check_db_url(self, name, env, services):
        role = "keel_" + name.replace("-", "_")
        url = urlparse(env.get("KEEL_DATABASE_URL", ""))
        if url.scheme not in ("postgresql", "postgres"):
            self.problem(name, "KEEL_DATABASE_URL must be a postgresql:// URL")
            return
        if url.password:
            self.problem(name, "KEEL_DATABASE_URL must not hold a password (use KEEL_DATABASE_PASSWORD_FILE)")
        if url.username != role or url.path.lstrip("/") != role:
            self.problem(name, f"KEEL_DATABASE_URL must use role and database {role} (one database per service)")
        if url.hostname != "postgres":
            self.problem(name, "KEEL_DATABASE_URL must point at the postgres service")
        if self.depends_of(services[name]).get("postgres") != "service_healthy":
            self.problem(name, "must wait for postgres: service_healthy")
        pw = env.get("KEEL_DATABASE_PASSWORD_FILE", "")
        if pw != f"/run/secrets/{name.replace('-', '_')}_db_password":
            self.problem(name, f"KEEL_DATABASE_PASSWORD_FILE should be /run/secrets/{name}_db_password")

    def check_brokers(self, name, brokers, services):
        kafka_port = self.kafka_advertised_port(services)
        for b in filter(None, brokers.split(",")):
            host, _, port = b.strip().rpartition(":")
            if host not in services:
                self.problem(name, f"KEEL_KAFKA_BROKERS names '{host}', which is not a service")
            elif host == "kafka" and kafka_port and port != kafka_port:
                self.problem(name, f"KEEL_KAFKA_BROKERS port {port} is not kafka's advertised port {kafka_port}")
        if not self.reaches(services, name, "kafka"):
            self.problem(name, "uses Kafka but does not depend on kafka (directly or through topic-init)")

    def kafka_advertised_port(self, services):
        adv = self.env_of(services["kafka"]).get("KAFKA_ADVERTISED_LISTENERS", "")
        m = re.search(r"PLAINTEXT://kafka:(\d+)", adv)
        return m.group(1) if m else None

    def check_kafka(self, services):
        env = self.env_of(services["kafka"])
        if not str(services["kafka"].get("image", "")).startswith("apache/kafka:3.9"):
            self.problem("kafka", "image must be apache/kafka:3.9.x (the version the local stack pins)")
        want = {
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        }
        for k, v in want.items():
            if env.get(k) != v:
                self.problem("kafka", f"{k} must be {v!r} (is {env.get(k)!r})")
        if not self.kafka_advertised_port(services):
            self.problem("kafka", "KAFKA_ADVERTISED_LISTENERS must advertise PLAINTEXT://kafka:<port>")
        if "CONTROLLER" in env.get("KAFKA_ADVERTISED_LISTENERS", ""):
            self.problem("kafka", "never advertise the CONTROLLER listener")
        node = env.get("KAFKA_NODE_ID", "")
        if not re.fullmatch(rf"{node}@kafka:\d+", env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")):
            self.problem("kafka", "KAFKA_CONTROLLER_QUORUM_VOTERS must be <KAFKA_NODE_ID>@kafka:<controller port>")
        cid = env.get("CLUSTER_ID", "")
        try:
            ok = len(cid) == 22 and len(base64.urlsafe_b64decode(cid + "==")) == 16
        except ValueError:
            ok = False
        if not ok:
            self.problem("kafka", f"CLUSTER_ID {cid!r} is not a 22-character base64url UUID")
        if "healthcheck" not in services["kafka"]:
            self.problem("kafka", "needs a healthcheck (topic-init waits for it)")

    def check_postgres(self, services):
        pg = services["postgres"]
        env = self.env_of(pg)
        if "POSTGRES_PASSWORD" in env:
            self.problem("postgres", "POSTGRES_PASSWORD is inline; use POSTGRES_PASSWORD_FILE")
        init = None
        for vol in pg.get("volumes") or []:
            if isinstance(vol, str) and "/docker-entrypoint-initdb.d/" in vol:
                init = vol.split(":", 1)[0]
        if not init:
            self.problem("postgres", "mounts no init script into /docker-entrypoint-initdb.d/")
            return
        try:
            with open(os.path.join(self.base, init), encoding="utf-8") as f:
                script = f.read()
        except OSError as e:
            self.problem("postgres", f"init script {init}: {e}")
            return
        m = re.search(r'^SERVICES="([^"]*)"', script, re.M)
        listed = set(m.group(1).split()) if m else set()
        db_services = {n for n, has_db in KEEL_SERVICES.items() if has_db}
        if listed != db_services:
            self.problem("postgres", f"{init} creates databases for {sorted(listed)}, compose has {sorted(db_services)}")
        mounted = self.secrets_of(pg)
        for n in sorted(db_services):
            secret = f"{n.replace('-', '_')}_db_password"
            if secret not in mounted:
                self.problem("postgres", f"does not mount secret {secret}, so role keel_{n} gets no real password")

    def check_prometheus(self, services):
        prom = services["prometheus"]
        config = rules_target = None
        mounts = {}
        for vol in prom.get("volumes") or []:
            if isinstance(vol, str) and vol.startswith("."):
                src, dst = vol.split(":")[:2]
                mounts[dst] = src
        for arg in self.command_of(prom):
            if arg.startswith("--config.file="):
                config = mounts.get(arg.split("=", 1)[1])
        if not config:
            self.problem("prometheus", "--config.file must name a file mounted from the repository")
            return
        try:
            with open(os.path.join(self.base, config), encoding="utf-8") as f:
                cfg = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            self.problem("prometheus", f"{config}: {e}")
            return
        for rf in cfg.get("rule_files") or []:
            rules_target = rf
            if rf not in mounts:
                self.problem("prometheus", f"{config} loads rules from {rf}, which is not mounted")
        if not rules_target:
            self.problem("prometheus", f"{config} loads no alert rules")
        targets = {}
        for job in cfg.get("scrape_configs") or []:
            for sc in job.get("static_configs") or []:
                for t in sc.get("targets") or []:
                    targets[job.get("job_name")] = t
        for name in KEEL_SERVICES:
            want = f"{name}:{getattr(self, 'keel_ports', {}).get(name)}"
            got = targets.get(f"keel-{name}")
            if got != want:
                self.problem("prometheus", f"{config}: job keel-{name} should scrape {want} (scrapes {got})")


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docker-compose.yml")
    path = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else default)
    checker = Checker(path)
    checker.run()
    if checker.problems:
        for p in checker.problems:
            print(f"check_compose: {p}", file=sys.stderr)
        print(f"check_compose: {len(checker.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    print(f"check_compose: {path} is consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
