#!/usr/bin/env python3
"""Check that docker-compose.yml describes the same stack as the local scripts.

docker-compose.yml cannot run on a machine without Docker, so this parses it and compares
it with the defaults read from deploy/local/{lib,env,kafka,postgres}.sh: image versions,
published ports, Kafka's single-node settings, PostgreSQL's role/database, socle's services.
Exit 0 when consistent; otherwise print every mismatch and exit 1.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

try:
    import yaml
except ImportError:
    sys.exit("check-compose: PyYAML missing: run deploy/local/install.sh (apt package python3-yaml)")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


def sh_default(text, var):
    """The default of `: "${VAR:=value}"` in a shell script."""
    m = re.search(r'\$\{' + re.escape(var) + r':=((?:[^{}]|\$\{[^}]*\})*)\}', text)
    if not m:
        sys.exit(f"check-compose: no default for {var} found in the local scripts")
    return m.group(1)


lib = (HERE / "lib.sh").read_text()
env_sh = (HERE / "env.sh").read_text()
kafka_sh = (HERE / "kafka.sh").read_text()
pg_sh = (HERE / "postgres.sh").read_text()

kafka_version = sh_default(lib, "SOCLE_KAFKA_VERSION")
kafka_port = sh_default(lib, "SOCLE_KAFKA_PORT")
controller_port = sh_default(lib, "SOCLE_KAFKA_CONTROLLER_PORT")
pg_port = sh_default(lib, "SOCLE_PG_PORT")
db_url = urlparse(sh_default(env_sh, "SOCLE__DATABASE__URL").replace("${SOCLE_PG_PORT}", pg_port))
registry_url = urlparse(sh_default(env_sh, "SOCLE__REGISTRY__URL"))
api_port = sh_default(env_sh, "SOCLE__API__LISTEN").rsplit(":", 1)[1]
registry_port = sh_default(env_sh, "SOCLE__REGISTRY__LISTEN").rsplit(":", 1)[1]
pg_vars = dict(re.findall(r'^(PG_USER_NAME|PG_PASSWORD|PG_DB)=(\S+)$', pg_sh, re.M))
pg_settings = dict(re.findall(r'^(max_connections) = (\S+)$', pg_sh, re.M))

# Kafka settings in kafka.sh's server.properties that hold no shell variable must be the same in
# compose, except the listener topology: compose adds an INTERNAL listener for the other containers.
server_props = re.search(r'server\.properties" <<EOF\n(.*?)\nEOF', kafka_sh, re.S)
if not server_props:
    sys.exit("check-compose: server.properties not found in kafka.sh")
kafka_props = dict(re.findall(r'^([a-z][a-z0-9._]*)=([^$\n]*)$', server_props.group(1), re.M))
for topology in ("listener.security.protocol.map", "inter.broker.listener.name"):
    kafka_props.pop(topology, None)

compose_file = ROOT / "docker-compose.yml"
compose = yaml.safe_load(compose_file.read_text())
services = compose.get("services", {})
# The local stack's components (deploy/local/components.sh list: NAME HEALTH_URL socle ARGS...),
# each of which compose must run as a service of the same name with the same command.
listing = subprocess.run(["bash", str(HERE / "components.sh"), "list"], capture_output=True, text=True,
                         env={**os.environ, "SOCLE_DATA": os.environ.get("SOCLE_DATA", str(ROOT / ".local"))})
if listing.returncode != 0:
    sys.exit(f"check-compose: components.sh list failed: {listing.stderr.strip()}")
components = {}
for line in listing.stdout.splitlines():
    name, health, *cmd = line.split()
    components[name] = (urlparse(health), cmd)
check(len(components) >= 9, f"components.sh lists {len(components)} components, expected at least 9")
for name in ("kafka", "postgres", "migrate", "init", *components):
    check(name in services, f"service '{name}' missing (components.sh runs it)")
if errors:
    sys.exit("check-compose: " + "; ".join(errors))


def env_of(svc):
    env = services[svc].get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def published(svc):
    out = set()
    for p in services[svc].get("ports", []) or []:
        if isinstance(p, dict):
            out.add(f"{p.get('published')}:{p.get('target')}")
        else:
            out.add(str(p).split("/")[0].replace("127.0.0.1:", ""))
    return out


def command(svc):
    c = services[svc].get("command", [])
    return c if isinstance(c, list) else c.split()


# Kafka
kafka = services["kafka"]
kenv = env_of("kafka")
check(kafka.get("image") == f"apache/kafka:{kafka_version}",
      f"kafka image is {kafka.get('image')}, local scripts use Kafka {kafka_version}")
check(f"{kafka_port}:{kafka_port}" in published("kafka"), f"kafka must publish {kafka_port}:{kafka_port}")
check(f"localhost:{kafka_port}" in kenv.get("KAFKA_ADVERTISED_LISTENERS", ""),
      f"KAFKA_ADVERTISED_LISTENERS must advertise localhost:{kafka_port}")
check(f"localhost:{controller_port}" in kenv.get("KAFKA_CONTROLLER_QUORUM_VOTERS", ""),
      f"KAFKA_CONTROLLER_QUORUM_VOTERS must use port {controller_port}")
check(len(kafka_props) >= 10, f"could not read kafka.sh's settings (found {sorted(kafka_props)})")
for prop, value in kafka_props.items():
    key = "KAFKA_" + prop.upper().replace(".", "_")
    check(kenv.get(key) == value, f"kafka: {key} is {kenv.get(key)!r}, kafka.sh sets {prop}={value}")

# PostgreSQL
pg = services["postgres"]
penv = env_of("postgres")
check(re.fullmatch(r"postgres:15(\..*)?", str(pg.get("image"))), f"postgres image is {pg.get('image')}, Debian 12 has PostgreSQL 15")
check(f"{pg_port}:5432" in published("postgres"), f"postgres must publish {pg_port}:5432")
check(db_url.port == int(pg_port), f"env.sh database URL port {db_url.port} != {pg_port}")
for key, local in (("POSTGRES_USER", pg_vars.get("PG_USER_NAME")), ("POSTGRES_PASSWORD", pg_vars.get("PG_PASSWORD")),
                   ("POSTGRES_DB", pg_vars.get("PG_DB"))):
    check(local is not None and penv.get(key) == local, f"postgres: {key} is {penv.get(key)!r}, postgres.sh uses {local!r}")
check(db_url.username == pg_vars.get("PG_USER_NAME") and db_url.path.lstrip("/") == pg_vars.get("PG_DB"),
      "env.sh's database URL does not name postgres.sh's role and database")
for setting, value in pg_settings.items():
    check(f"{setting}={value}" in command("postgres"), f"postgres command must set {setting}={value}")

# socle services: the same commands, health ports and settings as components.sh.
check(registry_url.port == int(registry_port), f"env.sh: registry URL port {registry_url.port} != listen port {registry_port}")
check(command("migrate") == ["socle", "migrate"], "the migrate service must run `socle migrate`")
init = " ".join(command("init"))
for step in ("socle admin topics apply", "socle admin schemas apply", "socle seal keygen"):
    check(step in init, f"the init service must run `{step}` (components.sh up does)")
socle_services = ["migrate", "init", *components]
for name in components:
    health, cmd = components[name]
    check(command(name) == cmd, f"{name}: compose runs {command(name)}, components.sh runs {cmd}")
    port = health.port
    check(f"{port}:{port}" in published(name), f"{name} must publish its health/API port {port}:{port}")
for name in socle_services:
    svc = services[name]
    check("build" in svc or svc.get("image") == services["migrate"].get("image"),
          f"{name} must run the image built from the Dockerfile")
    env = env_of(name)
    url = urlparse(env.get("SOCLE__DATABASE__URL", ""))
    check(url.username == pg_vars.get("PG_USER_NAME") and url.path.lstrip("/") == pg_vars.get("PG_DB"),
          f"{name}: SOCLE__DATABASE__URL must use role/database {pg_vars.get('PG_USER_NAME')}/{pg_vars.get('PG_DB')}")
    for var in ("SOCLE__KAFKA__BROKERS", "SOCLE__REGISTRY__URL", "SOCLE__AUTH__ISSUER", "SOCLE__AUTH__JWKS_URL",
                "SOCLE__SEAL__PRIVATE_KEY", "SOCLE__SEAL__PUBLIC_KEY"):
        check(var in env, f"{name}: {var} missing")
    # Every health port at the same port number as env.sh's default.
    for var in re.findall(r'(SOCLE__HEALTH__[A-Z]+):=', env_sh):
        local = sh_default(env_sh, var).rsplit(":", 1)[1]
        check(env.get(var, "").endswith(f":{local}"), f"{name}: {var} must use port {local} like env.sh")
check(env_of("registry").get("SOCLE__REGISTRY__LISTEN", "").endswith(f":{registry_port}"), "registry must listen on " + registry_port)
check(env_of("api").get("SOCLE__API__LISTEN", "").endswith(f":{api_port}"), "the API must listen on " + api_port)
# The image holds everything the binary reads (the defaults' relative paths under /app).
dockerfile = (ROOT / "Dockerfile").read_text()
for path in ("schemas/", "deploy/topics.toml", "deploy/agreements/", "policies/", "reference/"):
    check(f"COPY {path}" in dockerfile, f"Dockerfile must COPY {path} (the binary reads it at run time)")
    check((ROOT / path).exists(), f"{path} missing from the repository")

if errors:
    print(f"check-compose: {compose_file} differs from deploy/local:", file=sys.stderr)
    for e in errors:
        print("  - " + e, file=sys.stderr)
    sys.exit(1)
print(f"check-compose: docker-compose.yml matches deploy/local (Kafka {kafka_version} :{kafka_port}, "
      f"PostgreSQL :{pg_port} {pg_vars['PG_USER_NAME']}/{pg_vars['PG_DB']}, registry :{registry_port}, API :{api_port}, "
      f"{len(kafka_props)} Kafka settings, {len(components)} components with the same commands and health ports); "
      "parsed and compared only: no Docker engine runs it here")
