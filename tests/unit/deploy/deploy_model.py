"""The deployment files of ``deploy/`` read the way their tools read them, for the file checks in
``test_deploy_files.py``: compose with its variable interpolation, the Kubernetes manifests with
their kustomize generators, the ClickHouse users file, the Dockerfile and the ``cdp`` command line.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import os
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from services.core.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

# The services that run in containers (docs: the process contract); `cdp run broker|warehouse`
# are the local stand-ins for Kafka and ClickHouse and never belong in a container.
CONTAINER_SERVICES = ("ingest", "identity", "segments")
PROCESSORS = ("identity", "segments")


# --- environment files ---------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (docker compose's .env, kustomize's envs); comments and blank lines skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.relative_to(ROOT)}:{number}: not KEY=VALUE: {line!r}"
        assert key not in values, f"{path.relative_to(ROOT)}:{number}: {key} is set twice"
        values[key.strip()] = value.strip()
    return values


# --- compose ---------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Reference:
    name: str
    required: bool  # ${NAME:?message} / ${NAME?message}
    default: str | None  # ${NAME:-default} / ${NAME-default}


def references(text: str) -> list[Reference]:
    """Every variable a compose value interpolates."""
    found = []
    for match in _INTERPOLATION.finditer(text):
        if match["escaped"]:
            continue
        name = match["braced"] or match["plain"]
        op = match["op"] or ""
        found.append(Reference(name, "?" in op, match["arg"] if "-" in op else None))
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one value; a missing required variable fails the test, naming it."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"] or "", match["arg"] or ""
        value = env.get(name)
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith("?") and unset:
            pytest.fail(f"compose needs {name} ({arg}), which deploy/.env.example does not set")
        if op.endswith("-") and unset:
            return arg
        return value or ""

    return _INTERPOLATION.sub(replace, text)


@dataclass(frozen=True)
class ComposeService:
    name: str
    spec: dict[str, Any]
    env: dict[str, str]  # environment after interpolation with deploy/.env.example
    raw_env: dict[str, str]  # environment as written (with ${...})

    @property
    def command(self) -> list[str]:
        command = self.spec.get("command", [])
        return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]

    @property
    def replicas(self) -> int:
        return int(self.spec.get("deploy", {}).get("replicas", 1))

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))


def _environment(spec: dict[str, Any]) -> dict[str, str]:
    environment = spec.get("environment", {})
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


@dataclass(frozen=True)
class Compose:
    path: Path
    document: dict[str, Any]
    dotenv: dict[str, str]
    services: dict[str, ComposeService] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Compose:
        path = DEPLOY / "compose.yaml"
        document = yaml.safe_load(path.read_text())  # resolves the x-* anchors and << merges
        dotenv = read_env_file(DEPLOY / ".env.example")
        services = {}
        for name, spec in document["services"].items():
            raw = _environment(spec)
            env = {key: interpolate(value, dotenv) for key, value in raw.items()}
            services[name] = ComposeService(name, spec, env, raw)
        return cls(path, document, dotenv, services)

    def running(self, service: str) -> list[ComposeService]:
        """The compose services whose command is ``cdp run <service>``."""
        return [s for s in self.services.values() if s.command[:2] == ["run", service]]

    def mounts(self, service: str) -> dict[str, Path]:
        """Container path -> host path of the bind mounts of a compose service."""
        found = {}
        for volume in self.services[service].spec.get("volumes", []):
            source, target, *_ = str(volume).split(":")
            if source.startswith((".", "/")):
                found[target] = (self.path.parent / source).resolve()
        return found

    def host_path(self, service: str, container_path: str) -> Path:
        """Where a file the container reads comes from, through its bind mounts."""
        for target, source in sorted(self.mounts(service).items(), key=lambda kv: -len(kv[0])):
            if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
                return source / container_path[len(target) :].lstrip("/")
        pytest.fail(f"compose service {service} mounts nothing at {container_path}")


# --- Kubernetes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class K8s:
    kustomization: dict[str, Any]
    documents: list[dict[str, Any]]
    config: dict[str, str]  # the ConfigMap's data (configMapGenerator envs)
    secret: dict[str, str]  # the Secret's keys, from the template of its env file

    @classmethod
    def load(cls) -> K8s:
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        documents = []
        for resource in kustomization.get("resources", []):
            path = K8S / resource
            assert path.is_file(), f"kustomization.yaml lists {resource}, which does not exist"
            for document in yaml.safe_load_all(path.read_text()):
                if document:
                    document["_file"] = resource
                    documents.append(document)
        config = _generated(kustomization, "configMapGenerator", example=False)
        secret = _generated(kustomization, "secretGenerator", example=True)
        return cls(kustomization, documents, config, secret)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d.get("kind") == kind]

    def generator_name(self, generator: str) -> str:
        (entry,) = self.kustomization[generator]
        return str(entry["name"])

    def deployments_of(self, service: str) -> list[dict[str, Any]]:
        """The Deployments whose container runs ``cdp run <service>`` (at least one)."""
        found = [
            d for d in self.of_kind("Deployment") if command_service(container(d).get("args", [])) == service
        ]
        assert found, f"no Deployment runs `cdp run {service}`"
        return found

    def deployment_of(self, service: str) -> dict[str, Any]:
        (found,) = self.deployments_of(service)
        return found


def _generated(kustomization: dict[str, Any], generator: str, *, example: bool) -> dict[str, str]:
    """The data of a generator's env files; a secret's env file is not in the repository, its
    ``.example`` template is."""
    entries = kustomization.get(generator, [])
    assert len(entries) == 1, f"kustomization.yaml: expected one {generator}, found {len(entries)}"
    data: dict[str, str] = {}
    for name in entries[0].get("envs", []):
        path = K8S / (f"{name}.example" if example else name)
        assert path.is_file(), f"kustomization.yaml {generator} reads {name}, but {path.name} is missing"
        data.update(read_env_file(path))
    return data


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: expected one container"
    return dict(containers[0])


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- the cdp command line and settings -------------------------------------------------------------


def cdp_command() -> Any:
    """The click group behind ``cdp`` (typer builds it, on its own copy of click)."""
    from services.cli import app

    command = typer.main.get_command(app)
    assert hasattr(command, "list_commands"), "services.cli.app is not a group of commands"
    return command


def parse_cdp_args(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``cdp <args>`` exactly as the installed ``cdp`` would, without running it: the
    subcommand's name and its parameters. Unknown commands, options or bad values fail the test
    with click's message."""
    root = cdp_command()
    if not args:
        pytest.fail("the container runs `cdp` without a subcommand")
    name, rest = args[0], list(args[1:])
    context = root.context_class(root, info_name="cdp")
    command = root.get_command(context, name)
    if command is None:
        pytest.fail(
            f"`cdp {name}` does not exist (commands: {', '.join(sorted(root.list_commands(context)))})"
        )
    try:
        parsed = command.make_context(name, rest, parent=context)
    except Exception as exc:  # click's UsageError, NoSuchOption, BadParameter, ...
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
    else:
        return name, dict(parsed.params)
    pytest.fail(f"`cdp {' '.join(args)}` is not a valid invocation: {message}")


def command_service(args: list[str]) -> str | None:
    return str(args[1]) if len(args) >= 2 and args[0] == "run" else None


def service_secrets(service: str) -> tuple[str, ...]:
    """The Settings fields a service refuses to start without in distributed mode."""
    module = importlib.import_module(f"services.{service}.process")
    if "require_secrets(" not in inspect.getsource(module):
        return ()  # it checks for no secret of its own (the ClickHouse password is in the URL)
    if not hasattr(module, "SECRETS"):
        pytest.fail(
            f"services/{service}/process.py names no SECRETS (the secrets `cdp run {service}` requires)"
        )
    return tuple(module.SECRETS)


def settings_from_env(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a process with only ``env`` in its environment reads them."""
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.upper().startswith("CDP_")]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        return Settings(_env_file=None)  # type: ignore[call-arg]


def setting_names() -> set[str]:
    return {f"CDP_{name.upper()}" for name in Settings.model_fields}


def cdp_variables_in(text: str) -> set[str]:
    return set(re.findall(r"\bCDP_[A-Z0-9_]+\b", text))


# --- ClickHouse users ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClickHouseUser:
    name: str
    password_env: str | None
    profile: str
    grants: tuple[str, ...]
    readonly: int


def clickhouse_users(path: Path) -> dict[str, ClickHouseUser]:
    root = ET.parse(path).getroot()
    profiles_element, users_element = root.find("profiles"), root.find("users")
    profiles = {p.tag: p for p in (profiles_element if profiles_element is not None else [])}
    users = {}
    for user in users_element if users_element is not None else []:
        password = user.find("password")
        profile = user.findtext("profile") or "default"
        readonly_text = profiles[profile].findtext("readonly") if profile in profiles else None
        users[user.tag] = ClickHouseUser(
            name=user.tag,
            password_env=password.get("from_env") if password is not None else None,
            profile=profile,
            grants=tuple(q.text or "" for q in user.iterfind("grants/query")),
            readonly=int(readonly_text or 0),
        )
    return users


# --- Dockerfile ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def dockerfile_stages(path: Path) -> list[list[Instruction]]:
    """The instructions of each build stage (continuation lines joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in lines:
        keyword, _, value = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        assert stages, f"{path.name}: {keyword} before the first FROM"
        stages[-1].append(Instruction(keyword.upper(), value.strip()))
    return stages


def image_env() -> dict[str, str]:
    """The environment the final stage of deploy/Dockerfile sets (``ENV KEY=VALUE ...``)."""
    env: dict[str, str] = {}
    for instruction in dockerfile_stages(DEPLOY / "Dockerfile")[-1]:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.value):
                key, sep, value = pair.partition("=")
                assert sep, f"deploy/Dockerfile: use ENV KEY=VALUE, not {instruction.value!r}"
                env[key] = value
    return env


def dockerignore_excludes(rules: list[str], relative: str) -> bool:
    """Whether the build context leaves out a path (the last matching rule wins, as in Docker)."""
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = pattern.rstrip("/")
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatchcase(p, pattern[3:]) for p in parts)
        ):
            excluded = not negate
    return excluded


def dockerignore_rules(path: Path) -> list[str]:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def files_under(path: Path) -> Iterator[Path]:
    yield from (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


# --- Kubernetes quantities -------------------------------------------------------------------------

_SUFFIXES = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: object) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match[2] in _SUFFIXES, f"not a Kubernetes quantity: {value!r}"
    return float(match[1]) * _SUFFIXES[match[2]]
