"""The `switchboard` command: serve, agent add, token create, and clear start-up errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent
SWITCHBOARD = [sys.executable, "-m", "web.cli"]


def env_for(data_dir: Path, port: int | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["SWITCHBOARD_DATABASE__DATA_DIR"] = str(data_dir)
    env["SWITCHBOARD_DELIVERY__WORKERS"] = "0"
    if port:
        env["SWITCHBOARD_SERVER__PORT"] = str(port)
        env["SWITCHBOARD_SERVER__PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], stdin: str = "",
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWITCHBOARD, *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout, check=False)


def get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url)  # noqa: S310 - loopback http only
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    def __init__(self, data_dir: Path) -> None:
        for _ in range(3):  # on a port another test's server took meanwhile, on another one
            self.port = free_port()
            self.env = env_for(data_dir, self.port)
            self.proc = subprocess.Popen([*SWITCHBOARD, "serve"], env=self.env, cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True)
            self.url = f"http://127.0.0.1:{self.port}"
            if self._answers():
                return
            self.stop()
        raise AssertionError("switchboard serve found its port taken three times")

    def _answers(self) -> bool:
        """Whether this server answers /healthz (False: another process answers its port)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = get(f"{self.url}/healthz")
                if status == 200:
                    return body.get("process") == self.proc.pid
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise AssertionError(f"server did not start: {out}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def test_agent_add_and_token_create_without_a_running_server(data_dir: Path) -> None:
    env = env_for(data_dir)
    added = run_cli(["agent", "add", "zhang", "--name", "张客服", "--title", "技术支持",
                     "--role", "admin", "--password-stdin"], env, stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert "zhang" in added.stdout and "a long password" not in added.stdout + added.stderr
    token = run_cli(["token", "create", "zhang"], env)
    assert token.returncode == 0, token.stderr
    api_token = token.stdout.strip().splitlines()[-1]
    assert api_token.startswith("sbt_")
    twice = run_cli(["agent", "add", "zhang", "--name", "x", "--password-stdin"], env,
                    stdin="another password\n")
    assert twice.returncode == 2 and "already exists" in twice.stderr
    # the data survives: a server on the same data dir accepts the token
    server = Server(data_dir)
    try:
        status, me = get(f"{server.url}/api/me", api_token)
        assert status == 200 and me["display_name"] == "张客服" and me["title"] == "技术支持"
    finally:
        assert server.stop() == 0


def test_cli_works_while_the_server_runs_and_a_second_serve_is_refused(data_dir: Path) -> None:
    server = Server(data_dir)
    try:
        added = run_cli(["agent", "add", "li", "--name", "李客服", "--password-stdin"],
                        server.env, stdin="password123\n")
        assert added.returncode == 0, added.stderr
        token = run_cli(["token", "create", "li"], server.env).stdout.strip().splitlines()[-1]
        assert get(f"{server.url}/api/me", token)[0] == 200
        second = run_cli(["serve"], env_for(data_dir, free_port()))
        assert second.returncode == 2
        assert "in use by another running Switchboard" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        server.stop()


def test_kill_9_leaves_no_database_behind_and_data_survives(data_dir: Path) -> None:
    server = Server(data_dir)
    added = run_cli(["agent", "add", "wang", "--name", "王客服", "--password-stdin"],
                    server.env, stdin="password123\n")
    assert added.returncode == 0
    child_pid = json.loads((data_dir / "embedded.json").read_text())["pid"]
    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{child_pid}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{child_pid}/status").read_text() if Path(
            f"/proc/{child_pid}/status").exists() else ""
        if "zombie" in status:
            break
        time.sleep(0.1)
    restarted = Server(data_dir)
    try:
        token = run_cli(["token", "create", "wang"], restarted.env)
        assert token.returncode == 0, token.stderr
        assert get(f"{restarted.url}/api/me", token.stdout.strip().splitlines()[-1])[0] == 200
    finally:
        restarted.stop()


@pytest.mark.parametrize(("extra", "expected"), [
    ({"SWITCHBOARD_SERVER__PORT": "70000"}, "setting 'server.port'"),
    ({"SWITCHBOARD_SERVER__PROT": "1"}, "unknown key 'server.prot'"),
    ({"SWITCHBOARD_DATABASE__URI": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300"},
     "database.uri: cannot reach the database"),
    ({"SWITCHBOARD_DATABASE__URI": "postgres://x"}, "setting 'database.uri'"),
])
def test_wrong_settings_stop_with_one_clear_line(data_dir: Path, extra: dict[str, str],
                                                 expected: str) -> None:
    result = run_cli(["serve"], env_for(data_dir, free_port(), **extra))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("switchboard: error: ") and expected in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(data_dir: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(["serve"], env_for(data_dir, port))
    assert result.returncode == 2
    assert "server.port: cannot listen" in result.stderr


def test_config_file_option(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text("[server]\nport = 1\nbogus = 2\n")
    result = run_cli(["serve", "--config", str(config)], env_for(data_dir))
    assert result.returncode == 2 and "unknown setting 'server.bogus'" in result.stderr
