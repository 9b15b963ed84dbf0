"""The deployment files (Dockerfile, compose.yaml, deploy/*.service) stay in step with the
project: the Makefile's torch pin and constraints file, pyproject's entry point, the Settings'
variable names, constraints.txt's chromadb. No image is built here (no container daemon): the
files are parsed, and what can run without one (the healthchecks, the Chroma command line,
``systemd-analyze verify``) is run."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from bot.cli import build_parser
from bot.serve_cli import EXIT_CONFIG
from bot.settings import BotSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# Variables the deployment files set that are not Settings fields, and why.
NOT_SETTINGS = {
    "PATH": "the venv's bin first",
    "HF_HUB_OFFLINE": "never download a model (the Makefile exports it too)",
    "TRANSFORMERS_OFFLINE": "same, for transformers (the Makefile exports it too)",
    "ANONYMIZED_TELEMETRY": "Chroma's telemetry off (the Makefile and bot/cli.py set it too)",
    "TOKENIZERS_PARALLELISM": "no tokenizers fork warning (the Makefile and bot/cli.py too)",
    "PYTHONUNBUFFERED": "log lines reach the container log at once",
    "XDG_CACHE_HOME": "caches in systemd's CacheDirectory=",
    "PIP_NO_CACHE_DIR": "builder stage only: no pip cache in the layer",
    "PIP_DISABLE_PIP_VERSION_CHECK": "builder stage only",
}


# -- readers -----------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every environment variable the Settings classes read (their upper-case aliases)."""
    names: set[str] = set()
    for info in BotSettings.model_fields.values():
        for choice in getattr(info.validation_alias, "choices", None) or ():
            if isinstance(choice, str) and choice.isupper():
                names.add(choice)
    return names


def settings_default(env_name: str) -> Any:
    for info in BotSettings.model_fields.values():
        if env_name in (getattr(info.validation_alias, "choices", None) or ()):
            return info.default
    raise KeyError(env_name)


@dataclass
class Instruction:
    cmd: str
    args: str
    line: int

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"line {self.line}: {self.cmd} is not in exec form"
        return [str(v) for v in value]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]

    def last(self, cmd: str) -> Instruction:
        found = self.all(cmd)
        assert found, f"stage {self.name or self.base} has no {cmd}"
        return found[-1]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for ins in self.all("ENV"):
            tokens = shlex.split(ins.args)
            if tokens and "=" not in tokens[0]:  # legacy ``ENV KEY value``
                out[tokens[0]] = " ".join(tokens[1:])
                continue
            for token in tokens:
                key, _, value = token.partition("=")
                out[key] = value
        return out


@dataclass
class Dockerfile:
    global_args: list[Instruction]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse_dockerfile(text: str) -> Dockerfile:
    """A line parser: comments and blank lines dropped, ``\\`` continuations joined, one
    instruction per logical line, grouped by ``FROM``."""
    logical: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a comment inside a continuation is dropped too, as Docker does
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        logical.append((start, " ".join(buf)))
        buf = []
    assert not buf, "the Dockerfile ends inside a line continuation"
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for n, line in logical:
        cmd, _, args = line.partition(" ")
        ins = Instruction(cmd.upper(), args.strip(), n)
        if ins.cmd == "FROM":
            words = ins.args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append(ins)
        else:
            assert ins.cmd == "ARG", f"line {n}: {ins.cmd} before the first FROM"
            global_args.append(ins)
    return Dockerfile(global_args, stages)


@dataclass
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None  # None: from the build context
    line: int


def copies(stage: Stage) -> list[Copy]:
    out = []
    for ins in stage.all("COPY"):
        words = shlex.split(ins.args)
        from_stage = next(
            (w.split("=", 1)[1] for w in words if w.startswith("--from=")), None
        )
        words = [w for w in words if not w.startswith("--")]
        out.append(Copy(words[:-1], words[-1], from_stage, ins.line))
    return out


def image_volumes(dockerfile: Dockerfile) -> list[str]:
    return [
        v
        for ins in dockerfile.final.all("VOLUME")
        for v in (ins.exec_form() if ins.args.startswith("[") else ins.args.split())
    ]


def pip_installs(stage: Stage) -> list[tuple[Instruction, list[str]]]:
    out = []
    for ins in stage.all("RUN"):
        for part in re.split(r"&&|;", ins.args):
            tokens = shlex.split(part)
            if "pip" in tokens and "install" in tokens:
                out.append((ins, tokens[tokens.index("install") + 1 :]))
    return out


def makefile_setup() -> tuple[str, str, dict[str, str]]:
    """The Makefile's torch pin, its constraints file and its exported variables."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    torch = re.findall(r"pip install [^\n]*\btorch==([\w.+]+)", text)
    constraints = re.findall(r"pip install [^\n]*-c (\S+)", text)
    exports = dict(re.findall(r"^export (\w+) :?= *(\S*)", text, flags=re.M))
    assert len(torch) == 1 and len(constraints) == 1, "the Makefile's setup recipe changed shape"
    return torch[0], constraints[0], exports


def constraints_pin(name: str) -> str:
    text = (ROOT / makefile_setup()[1]).read_text(encoding="utf-8")
    pins = re.findall(rf"^{re.escape(name)}==(\S+)$", text, flags=re.M | re.I)
    assert len(pins) == 1, f"{name} is not pinned once in constraints.txt"
    return pins[0]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def entry_point() -> str:
    scripts = pyproject()["project"]["scripts"]
    assert list(scripts) == ["newsbot"], scripts
    return "newsbot"


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """systemd's format: [Section], Key=value (keys may repeat), # and ; comments."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        assert current is not None and "=" in line, f"{path.name}: unexpected line {raw!r}"
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def unit_value(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    values = unit_values(unit, section, key)
    assert values, f"[{section}] {key}= is not set"
    return values[-1]


def unit_environment(unit: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in unit_values(unit, "Service", "Environment"):
        for token in shlex.split(value):
            key, _, val = token.partition("=")
            env[key] = val
    return env


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_with_a_builder(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    builder = dockerfile.stage("builder")
    assert builder is not dockerfile.final
    # The runtime stage takes the venv, nothing else, from the builder.
    from_builder = [c for c in copies(dockerfile.final) if c.from_stage == "builder"]
    assert [(c.sources, c.dest) for c in from_builder] == [(["/opt/venv"], "/opt/venv")]
    assert dockerfile.final.all("RUN")  # the user; no pip in the runtime stage
    assert not pip_installs(dockerfile.final)


def test_torch_pin_and_constraints_are_the_makefiles(dockerfile: Dockerfile) -> None:
    torch, constraints, _ = makefile_setup()
    installs = pip_installs(dockerfile.stage("builder"))
    torch_runs = [(i, t) for i, t in installs if any(w.startswith("torch") for w in t)]
    project_runs = [(i, t) for i, t in installs if "-c" in t]
    assert len(torch_runs) == 1 and len(project_runs) == 1
    (torch_ins, torch_args), (project_ins, project_args) = torch_runs[0], project_runs[0]
    # The same pin, first, and the CPU build from PyTorch's index (PyPI's is the CUDA one).
    assert f"torch=={torch}" in torch_args
    assert torch_ins.line < project_ins.line
    assert "--index-url" in torch_args
    index = torch_args[torch_args.index("--index-url") + 1]
    if index.startswith("$"):
        arg = index.strip('"${}')
        index = next(
            a.args.split("=", 1)[1]
            for a in dockerfile.stage("builder").all("ARG")
            if a.args.startswith(f"{arg}=")
        )
    assert index == "https://download.pytorch.org/whl/cpu"
    # Then the project, non-editable, with the Makefile's constraints file.
    assert project_args[project_args.index("-c") + 1] == constraints
    assert "-e" not in project_args and "--editable" not in project_args
    assert project_args[-1] == "."
    # The pins agree with each other: pyproject, constraints.txt (the +cpu build), Makefile.
    assert f"torch=={torch}" in pyproject()["project"]["dependencies"]
    assert constraints_pin("torch").split("+")[0] == torch


def test_builder_copies_what_the_build_needs_before_installing(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stage("builder")
    install_line = next(i.line for i, t in pip_installs(builder) if "-c" in t)
    copied = {
        src.rstrip("/")
        for c in copies(builder)
        if c.from_stage is None and c.line < install_line
        for src in c.sources
    }
    project = pyproject()
    needed = {"pyproject.toml", makefile_setup()[1], project["project"]["readme"]}
    needed |= set(project["project"].get("license-files", []))
    # Every top-level package setuptools will find.
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for path in ROOT.iterdir():
        if (path / "__init__.py").exists() and any(fnmatch.fnmatch(path.name, p) for p in patterns):
            needed.add(path.name)
    assert needed <= copied, needed - copied


def test_runtime_stage_runs_newsbot_serve_as_non_root(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    user = final.last("USER").args.split(":")[0]
    assert user not in {"root", "0", ""}
    assert final.last("USER").line < final.last("ENTRYPOINT").line
    entry = final.last("ENTRYPOINT").exec_form()
    cmd = final.last("CMD").exec_form()
    assert entry == [entry_point()]
    assert cmd == ["serve"]
    args = build_parser().parse_args(cmd)  # a real subcommand of that entry point
    assert args.command == "serve"


def test_data_volume_and_offline_environment(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    assert image_volumes(dockerfile) == ["/data"]
    env = final.env()
    data_alias = BotSettings.model_fields["data_dir"].validation_alias
    data_env = next(c for c in getattr(data_alias, "choices", ()) if str(c).isupper())
    assert env[str(data_env)] == "/data"
    # The Makefile's exported variables hold in the image too, with the same values.
    for name, value in makefile_setup()[2].items():
        assert env.get(name) == value, name
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_dockerfile_env_names_are_settings_or_explained(dockerfile: Dockerfile) -> None:
    known = settings_env_names()
    for stage in dockerfile.stages:
        unknown = set(stage.env()) - known - set(NOT_SETTINGS)
        assert not unknown, f"stage {stage.name}: {unknown} are neither Settings nor explained"


def test_healthcheck_runs_the_script_on_metrics_port(dockerfile: Dockerfile) -> None:
    health = load_healthcheck()
    final = dockerfile.final
    ins = final.last("HEALTHCHECK")
    options, _, command = ins.args.partition("CMD")
    command_words = json.loads(command)
    assert command_words[0] == "python"
    script = command_words[1]
    copied = {c.dest: c.sources for c in copies(final) if c.from_stage is None}
    assert copied.get(script) == ["deploy/healthcheck.py"]
    # Docker's timeout leaves the script time to report its own timeout.
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout and float(timeout.group(1)) > health.TIMEOUT_S
    assert health.PATH == "/healthz"
    env = final.env()
    assert int(env["METRICS_PORT"]) == health.DEFAULT_PORT
    exposed = {p.split("/")[0] for e in final.all("EXPOSE") for p in e.args.split()}
    assert env["METRICS_PORT"] in exposed
    assert str(settings_default("WEBHOOK_PORT")) in exposed


def test_metrics_port_is_off_by_default_and_on_in_the_image(
    dockerfile: Dockerfile, compose: dict[str, Any]
) -> None:
    """METRICS_PORT is a Settings field, off (0) for a checkout; the image turns it on at the
    healthcheck's port, listening beyond loopback, and compose keeps it on whatever .env says."""
    assert "METRICS_PORT" in settings_env_names()
    assert settings_default("METRICS_PORT") == 0
    env = dockerfile.final.env()
    port = int(env["METRICS_PORT"])
    assert port == load_healthcheck().DEFAULT_PORT
    assert env["METRICS_LISTEN"] == "0.0.0.0"
    assert str(compose["services"]["bot"]["environment"]["METRICS_PORT"]) == str(port)


def _dockerignore_match(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):  # at any depth
        parts = path.split("/")
        return any(
            fnmatch.fnmatchcase("/".join(parts[i:]), pattern[3:]) for i in range(len(parts))
        )
    return fnmatch.fnmatchcase(path, pattern)


def dockerignore_ignores(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins,
    ``!`` re-including."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.removeprefix("!").rstrip("/")
        if any(_dockerignore_match(bare, p) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_lets_in_only_what_is_copied(dockerfile: Dockerfile) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert patterns[0] == "*"  # an allow-list
    for stage in dockerfile.stages:
        for c in copies(stage):
            if c.from_stage is not None:
                continue
            for src in c.sources:
                src_path = ROOT / src
                files = [src_path] if src_path.is_file() else [
                    p for p in src_path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                ]
                assert files, src
                for f in files:
                    rel = f.relative_to(ROOT).as_posix()
                    assert not dockerignore_ignores(patterns, rel), rel
    for secret_or_bulk in (".env", "data/newsbot.sqlite3", ".venv/bin/python", ".git/HEAD",
                           "tests/bot/test_bot.py", "bot/__pycache__/cli.cpython-311.pyc"):
        assert dockerignore_ignores(patterns, secret_or_bulk), secret_or_bulk


# -- the healthcheck script --------------------------------------------------------------------


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("newsbot_healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, Any]]]:
    """An HTTP server answering ``state["status"]`` and recording the paths asked."""
    state: dict[str, Any] = {"status": 200, "paths": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state["paths"].append(self.path)
            body = b"ok"
            self.send_response(state["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_healthcheck_asks_healthz_and_reads_the_status(health_server) -> None:
    port, state = health_server
    health = load_healthcheck()
    assert health.check(port, timeout=2) == 0
    assert state["paths"] == ["/healthz"]
    state["status"] = 503
    assert health.check(port, timeout=2) == 1
    state["status"] = 204
    assert health.check(port, timeout=2) == 0


def test_healthcheck_without_a_server_is_unhealthy_unless_switched_off() -> None:
    health = load_healthcheck()
    assert health.check(free_port(), timeout=1) == 1
    assert health.check(0, timeout=1) == 0  # METRICS_PORT=0: nothing to ask


@pytest.mark.timeout(60)  # a check that ignored its timeout would hang here, and fail
def test_healthcheck_times_out_on_a_stuck_server(capsys: pytest.CaptureFixture[str]) -> None:
    health = load_healthcheck()
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert health.check(listener.getsockname()[1], timeout=0.5) == 1
    assert "timed out" in capsys.readouterr().out


def test_healthcheck_script_reads_metrics_port(health_server) -> None:
    port, state = health_server
    script = str(DEPLOY / "healthcheck.py")
    env = dict(os.environ)
    ok = subprocess.run([sys.executable, script], env={**env, "METRICS_PORT": str(port)},
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stdout
    assert state["paths"] == ["/healthz"]
    closed = str(free_port())
    strict = subprocess.run(
        [sys.executable, script],
        env={**env, "METRICS_PORT": closed},
        capture_output=True, text=True, timeout=30,
    )
    assert strict.returncode == 1 and "unhealthy" in strict.stdout
    bad = subprocess.run([sys.executable, script], env={**env, "METRICS_PORT": "http"},
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1


# -- compose.yaml ------------------------------------------------------------------------------


def test_compose_bot_service(compose: dict[str, Any], dockerfile: Dockerfile) -> None:
    services = compose["services"]
    assert set(services) == {"bot", "chroma"}
    bot = services["bot"]
    assert bot["build"] == "."
    env_file = bot["env_file"]
    assert env_file == ".env" or ".env" in env_file
    assert bot["restart"] == "unless-stopped"
    assert bot["depends_on"] == {"chroma": {"condition": "service_healthy"}}
    volume_targets = {v.split(":")[1] for v in bot["volumes"]}
    assert volume_targets == set(image_volumes(dockerfile))
    env = {k: str(v) for k, v in bot["environment"].items()}
    # Set here, not left to .env, whose values are a checkout's (./data, embedded Chroma).
    assert env["NEWSBOT_DATA_DIR"] == "/data"
    assert env["CHROMA_HOST"] == "chroma"
    chroma_command = services["chroma"]["command"]
    assert env["CHROMA_PORT"] == chroma_command[chroma_command.index("--port") + 1]
    unknown = set(env) - settings_env_names() - set(NOT_SETTINGS)
    assert not unknown, unknown
    for volume in bot["volumes"]:
        assert volume.split(":")[0] in compose["volumes"]  # named volumes, declared


def test_compose_chroma_service(compose: dict[str, Any]) -> None:
    chroma = compose["services"]["chroma"]
    image, _, tag = chroma["image"].partition(":")
    assert image == "chromadb/chroma"
    assert tag == constraints_pin("chromadb")  # the server is the client's version
    command = chroma["command"]
    assert command[0] == "run"
    path = command[command.index("--path") + 1]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # for the bot, on the compose net
    volumes = dict(v.split(":", 1) for v in chroma["volumes"])
    assert list(volumes.values()) == [path]
    assert set(volumes) <= set(compose["volumes"])
    assert chroma["ports"], "published for newsbot index/status from the host"
    for mapping in chroma["ports"]:
        host_ip, host_port, container_port = str(mapping).split(":")
        assert host_ip == "127.0.0.1"
        assert container_port == port
    assert chroma["restart"] == "unless-stopped"
    test = chroma["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "curl" not in test[1] and f"/{port}" in test[1]


@pytest.fixture(scope="module")
def chroma_from_compose(compose: dict[str, Any], tmp_path_factory) -> Iterator[int]:
    """The compose service's own command line, run by this venv's ``chroma`` (the same CLI as
    the image's entry point, at the pinned version), on a free port and a temporary path."""
    command = list(compose["services"]["chroma"]["command"])
    port = free_port()
    command[command.index("--path") + 1] = str(tmp_path_factory.mktemp("compose-chroma"))
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    exe = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(exe), *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, ANONYMIZED_TELEMETRY="False"),
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("chroma did not start with the compose service's command")
            time.sleep(0.3)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="the chroma healthcheck is bash")
def test_compose_chroma_healthcheck_against_a_real_server(
    compose: dict[str, Any], chroma_from_compose: int
) -> None:
    chroma = compose["services"]["chroma"]
    command = chroma["command"]
    port = command[command.index("--port") + 1]
    check = chroma["healthcheck"]["test"][1]

    def run(on_port: int) -> int:
        script = check.replace(f"127.0.0.1/{port}", f"127.0.0.1/{on_port}")
        return subprocess.run(["sh", "-c", script], capture_output=True, timeout=30).returncode

    assert run(chroma_from_compose) == 0
    assert run(free_port()) != 0


# -- systemd -----------------------------------------------------------------------------------


def test_newsbot_unit() -> None:
    unit = parse_unit(DEPLOY / "newsbot.service")
    assert unit_value(unit, "Service", "User") == "newsbot"
    exec_start = shlex.split(unit_value(unit, "Service", "ExecStart"))
    binary = Path(exec_start[0])
    assert binary.is_absolute() and binary.name == entry_point()
    assert binary.parent.name == "bin"  # a venv's bin
    args = build_parser().parse_args(exec_start[1:])
    assert args.command == "serve"
    data_dir = args.data_dir
    assert data_dir, "--data-dir: the env file cannot move the data dir out of ReadWritePaths"
    assert unit_value(unit, "Service", "ProtectSystem") == "strict"
    writable = [p for v in unit_values(unit, "Service", "ReadWritePaths") for p in v.split()]
    assert data_dir in writable
    assert data_dir == "/var/lib/" + unit_value(unit, "Service", "StateDirectory")
    assert Path(unit_value(unit, "Service", "WorkingDirectory")).is_absolute()
    assert Path(unit_value(unit, "Service", "EnvironmentFile").lstrip("-")).is_absolute()
    assert unit_value(unit, "Service", "Restart") == "on-failure"
    assert unit_value(unit, "Service", "RestartPreventExitStatus") == str(EXIT_CONFIG)
    assert unit_value(unit, "Service", "NoNewPrivileges") == "yes"
    assert unit_value(unit, "Service", "PrivateTmp") == "yes"
    env = unit_environment(unit)
    for name, value in makefile_setup()[2].items():
        assert env.get(name) == value, name
    unknown = set(env) - settings_env_names() - set(NOT_SETTINGS)
    assert not unknown, unknown
    assert unit_value(unit, "Install", "WantedBy") == "multi-user.target"


def test_chroma_unit_listens_on_loopback() -> None:
    unit = parse_unit(DEPLOY / "chroma.service")
    exec_start = shlex.split(unit_value(unit, "Service", "ExecStart"))
    assert Path(exec_start[0]).name == "chroma" and exec_start[1] == "run"
    assert exec_start[exec_start.index("--host") + 1] == "127.0.0.1"
    path = exec_start[exec_start.index("--path") + 1]
    assert path == "/var/lib/" + unit_value(unit, "Service", "StateDirectory")
    assert exec_start[exec_start.index("--port") + 1] == str(settings_default("CHROMA_PORT"))
    assert unit_value(unit, "Service", "ProtectSystem") == "strict"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze on PATH")
@pytest.mark.parametrize("name", ["newsbot.service", "chroma.service"])
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    """``systemd-analyze verify`` on a copy whose ExecStart names this venv's executables.

    The unit's /opt/newsbot/venv does not exist here and verify fails on a missing
    executable; the rest of what it checks (unknown keys, unparsable values, bad sections) it
    only *warns* about, with exit status 0. So: the binary is swapped for one that exists, and
    any line verify prints about the unit fails the test."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "newsbot").exists() or not (venv_bin / "chroma").exists():
        pytest.skip(f"{venv_bin} holds no newsbot/chroma executables to verify against")
    copy = tmp_path / name
    copy.write_text(text.replace("/opt/newsbot/venv/bin/", f"{venv_bin}/"), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(copy)],
                          capture_output=True, text=True, timeout=60)
    about_unit = [
        line for line in (done.stdout + done.stderr).splitlines()
        if name in line or str(copy) in line
    ]
    assert done.returncode == 0 and not about_unit, done.stdout + done.stderr
