"""docker-compose.ha.yml: two oncall instances on one PostgreSQL and one Redis (with
append-only persistence), the same settings and signing key on both, no secret in the
file, and a load balancer whose configuration sends requests to both. When a compose
binary or Caddy is installed, they check the files too."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.ha.yml"
LB_CONFIG = ROOT / "contrib" / "ha" / "Caddyfile"
PORT = 8080  # the instances' [server] port (the image's default)
# `${NAME:?message}`: compose refuses to start, saying the message, when NAME is unset.
REQUIRED = re.compile(r"^\$\{(?P<name>\w+):\?(?P<message>[^}]+)\}$")
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}` anywhere in a value.
REFERENCE = re.compile(r"\$\{(?P<name>\w+)(?::?(?P<op>[-?])(?P<rest>[^}]*))?\}")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$")
# Values the compose checks below run with (never a real deployment's).
FAKE_ENV = {"ONCALL_SECRET_KEY": "k" * 32, "POSTGRES_PASSWORD": "p" * 32}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def environment(service: dict[str, Any]) -> dict[str, str]:
    """Return a service's environment as a mapping (compose also takes a list of NAME=value)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def instances(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the oncall services that serve: those naming their [cluster] instance."""
    return {
        name: service
        for name, service in spec["services"].items()
        if "ONCALL_CLUSTER_INSTANCE" in environment(service)
    }


def volume_targets(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return a service's mounts by target path, each as compose's long form."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            volume = {"source": source, "target": target, "read_only": mode == ["ro"]}
        mounts[volume["target"]] = volume
    return mounts


def service_with_image(spec: dict[str, Any], image: str) -> tuple[str, dict[str, Any]]:
    [found] = [
        (name, service)
        for name, service in spec["services"].items()
        if str(service.get("image", "")).split(":")[0] == image
    ]
    return found


def is_secret(key: str) -> bool:
    """Return whether an environment variable of this name holds a secret (a *_FILE one
    names the file that does)."""
    return bool(SECRET_NAME.search(key)) and not key.endswith("_FILE")


def secret_problems(spec: dict[str, Any]) -> list[str]:
    """Return every environment variable of a secret's name whose value is written in the
    file rather than taken from compose's environment, every database URL with a literal
    password, and a signing key compose would start without."""
    found = []
    for service in instances(spec).values():
        key = environment(service).get("ONCALL_SECURITY_SECRET_KEY", "")
        if not REQUIRED.match(key):
            found.append(
                "the signing key is not a ${VAR:?message} compose refuses to start without"
            )
            break
    for name, service in spec["services"].items():
        for key, value in environment(service).items():
            if key.endswith("_URL") and "://" in value:
                userinfo = value.partition("://")[2].rpartition("@")[0]
                password = userinfo.partition(":")[2]
                if password and not REQUIRED.match(password):
                    found.append(f"{name}: {key} has a literal password")
            elif is_secret(key) and value and not REFERENCE.fullmatch(value):
                found.append(f"{name}: {key} is a literal")
            for match in REFERENCE.finditer(value):
                if is_secret(key) and match["op"] == "-" and match["rest"]:
                    found.append(f"{name}: {key} falls back to a literal")
    return found


def problems(spec: dict[str, Any], lb_config: str) -> list[str]:
    """Return what keeps the compose file from being a two-instance deployment without a
    secret in it, empty when nothing does."""
    return deployment_problems(spec, lb_config) + secret_problems(spec)


def deployment_problems(spec: dict[str, Any], lb_config: str) -> list[str]:
    """Return what keeps the services from being a two-instance deployment behind the load
    balancer of `lb_config`, empty when nothing does."""
    found: list[str] = []
    serving = instances(spec)
    if len(serving) != 2:
        return [f"expected two oncall instances, found {sorted(serving)}"]
    envs = [environment(service) for service in serving.values()]
    for key in ("ONCALL_DATABASE_URL", "REDIS_HOST", "ONCALL_SECURITY_SECRET_KEY"):
        values = {env.get(key, "") for env in envs}
        if len(values) != 1 or "" in values:
            found.append(f"{key} differs between the instances or is unset: {sorted(values)}")
    names = [env["ONCALL_CLUSTER_INSTANCE"] for env in envs]
    if len(set(names)) != len(names):
        found.append(f"ONCALL_CLUSTER_INSTANCE is not distinct: {names}")
    url = envs[0].get("ONCALL_DATABASE_URL", "")
    postgres, _ = service_with_image(spec, "postgres")
    if not url.startswith("postgresql+asyncpg://") or f"@{postgres}:" not in url:
        found.append(f"the database URL does not name the {postgres} service: {url}")
    redis_name, redis = service_with_image(spec, "redis")
    if envs[0].get("REDIS_HOST") != redis_name:
        found.append(f"REDIS_HOST is not the {redis_name} service")
    command = redis.get("command") or []
    words = command.split() if isinstance(command, str) else list(command)
    if "--appendonly" not in words or words[words.index("--appendonly") + 1 :][:1] != ["yes"]:
        found.append(f"Redis runs without --appendonly yes: {words}")
    if "/data" not in volume_targets(redis):
        found.append("Redis keeps its append-only file in no volume")
    postgres_spec = spec["services"][postgres]
    data = volume_targets(postgres_spec).get("/var/lib/postgresql/data")
    if data is None or data["source"] not in (spec.get("volumes") or {}):
        found.append("PostgreSQL keeps its data in no named volume")
    if "healthcheck" not in postgres_spec:
        found.append("PostgreSQL has no healthcheck")
    for name, service in serving.items():
        depends = service.get("depends_on") or {}
        if not isinstance(depends, dict) or depends.get(postgres, {}).get("condition") != (
            "service_healthy"
        ):
            found.append(f"{name} does not wait for PostgreSQL to be healthy")
        directory = environment(service).get("ONCALL_DIRECTORY_PATH", "")
        mount = volume_targets(service).get(directory)
        if mount is None or not mount.get("read_only"):
            found.append(f"{name} does not mount the directory file read-only")
    sources = {
        volume_targets(service).get(env.get("ONCALL_DIRECTORY_PATH", ""), {}).get("source")
        for service, env in zip(serving.values(), envs, strict=True)
    }
    if len(sources) != 1:
        found.append(f"the instances read different directory files: {sources}")
    _, balancer = service_with_image(spec, "caddy")
    if not any(m["source"].endswith(LB_CONFIG.name) for m in volume_targets(balancer).values()):
        found.append("the load balancer does not mount its configuration")
    for name in serving:
        if not re.search(rf"(?<![\w-]){re.escape(name)}:{PORT}\b", lb_config):
            found.append(f"the load balancer's configuration does not name {name}:{PORT}")
    # /-/ready: whether this instance accepts alerts. /health fails on all instances at
    # once while nobody leads, which would take every instance out of the rotation.
    if not re.search(r"^\s*health_uri\s+/-/ready\s*$", lb_config, re.MULTILINE):
        found.append("the load balancer does not check /-/ready")
    return found


def test_the_compose_file_is_a_two_instance_deployment():
    assert problems(compose(), LB_CONFIG.read_text()) == []


def test_the_instances_are_named_and_built_from_the_dockerfile():
    serving = instances(compose())
    assert sorted(serving) == ["oncall-a", "oncall-b"]
    assert all(service["build"] == "." for service in serving.values())


def break_instance_name(spec: dict[str, Any]) -> None:
    spec["services"]["oncall-b"]["environment"]["ONCALL_CLUSTER_INSTANCE"] = "oncall-a"


def break_database(spec: dict[str, Any]) -> None:
    env = spec["services"]["oncall-b"]["environment"]
    env["ONCALL_DATABASE_URL"] = env["ONCALL_DATABASE_URL"].replace("/oncall", "/other")


def break_redis(spec: dict[str, Any]) -> None:
    spec["services"]["oncall-a"]["environment"]["REDIS_HOST"] = "localhost"


def break_appendonly(spec: dict[str, Any]) -> None:
    spec["services"]["redis"]["command"] = ["redis-server"]


def break_postgres_volume(spec: dict[str, Any]) -> None:
    del spec["services"]["postgres"]["volumes"]


def break_secret(spec: dict[str, Any]) -> None:
    for name in ("oncall-a", "oncall-b"):
        spec["services"][name]["environment"]["ONCALL_SECURITY_SECRET_KEY"] = "k" * 32


def break_secret_default(spec: dict[str, Any]) -> None:
    for name in ("oncall-a", "oncall-b"):
        env = spec["services"][name]["environment"]
        env["ONCALL_SERVER_METRICS_TOKEN"] = "${ONCALL_METRICS_TOKEN:-" + "t" * 32 + "}"


def break_database_password(spec: dict[str, Any]) -> None:
    for name in ("oncall-a", "oncall-b"):
        env = spec["services"][name]["environment"]
        env["ONCALL_DATABASE_URL"] = "postgresql+asyncpg://oncall:hunter2@postgres:5432/oncall"


def break_third_instance(spec: dict[str, Any]) -> None:
    spec["services"]["oncall-c"] = copy.deepcopy(spec["services"]["oncall-b"])


@pytest.mark.parametrize(
    ("breaking", "problem"),
    [
        (break_instance_name, "ONCALL_CLUSTER_INSTANCE is not distinct"),
        (break_database, "ONCALL_DATABASE_URL differs"),
        (break_redis, "REDIS_HOST differs"),
        (break_appendonly, "without --appendonly yes"),
        (break_postgres_volume, "PostgreSQL keeps its data in no named volume"),
        (break_secret, "ONCALL_SECURITY_SECRET_KEY is a literal"),
        (break_secret_default, "ONCALL_SERVER_METRICS_TOKEN falls back to a literal"),
        (break_database_password, "ONCALL_DATABASE_URL has a literal password"),
        (break_third_instance, "expected two oncall instances"),
    ],
)
def test_a_broken_compose_file_is_found(breaking, problem):
    spec = compose()
    breaking(spec)
    found = problems(spec, LB_CONFIG.read_text())
    assert any(problem in line for line in found), found


def test_a_load_balancer_that_leaves_out_an_instance_is_found():
    lb_config = LB_CONFIG.read_text().replace("oncall-b:8080", "oncall-bb:8080")
    assert problems(compose(), lb_config) == [
        "the load balancer's configuration does not name oncall-b:8080"
    ]


def test_a_load_balancer_checking_health_is_found():
    lb_config = LB_CONFIG.read_text().replace("health_uri /-/ready", "health_uri /health")
    assert problems(compose(), lb_config) == ["the load balancer does not check /-/ready"]


def has_compose() -> bool:
    """Return whether `docker compose` (the plugin, Compose v2) runs; `config` needs no
    Docker daemon. The end-of-life standalone docker-compose 1 is not used: it refuses
    long-form options the file uses."""
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


def run_compose_config(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if not has_compose():
        pytest.skip("the docker compose plugin is not installed")
    # Only the compose file's own variables: none of the caller's ONCALL_* leak in.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **environ}
    if "DOCKER_CONFIG" in os.environ:  # where a user-installed compose plugin lives
        env["DOCKER_CONFIG"] = os.environ["DOCKER_CONFIG"]
    return subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--project-directory", str(ROOT), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


def test_compose_accepts_the_file():
    result = run_compose_config(FAKE_ENV)
    assert result.returncode == 0, result.stderr
    # Resolved, the secrets are the values given: only the deployment is checked.
    resolved = yaml.safe_load(result.stdout)
    assert deployment_problems(resolved, LB_CONFIG.read_text()) == []
    key = resolved["services"]["oncall-a"]["environment"]["ONCALL_SECURITY_SECRET_KEY"]
    assert key == FAKE_ENV["ONCALL_SECRET_KEY"]


@pytest.mark.parametrize("missing", sorted(FAKE_ENV))
def test_compose_refuses_to_start_without_a_secret(missing):
    result = run_compose_config({k: v for k, v in FAKE_ENV.items() if k != missing})
    assert result.returncode != 0
    assert f"set {missing}," in result.stderr


def test_caddy_accepts_the_load_balancer_configuration():
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed")
    result = subprocess.run(
        [caddy, "validate", "--config", str(LB_CONFIG), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
