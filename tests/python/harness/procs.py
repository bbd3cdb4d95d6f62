"""Start, watch and stop the binaries under test (provider-sim, tailmeter).

Every wait is bounded; every process logs to a file (never a pipe, which a
chatty process could fill and block on), and that log is quoted when a start
fails so the cause is in the test report.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


def find_binary(name: str, env_var: str) -> Path:
    """Path of a built binary: `$env_var`, else `$CARGO_TARGET_DIR/debug`, else `target/debug`."""
    explicit = os.environ.get(env_var)
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"{env_var}={explicit} is not an executable file")
        return path
    candidates = []
    target_dir = os.environ.get("CARGO_TARGET_DIR")
    if target_dir:
        candidates.append(Path(target_dir) / "debug" / name)
    candidates.append(REPO / "target" / "debug" / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"{name} binary not found (looked at {looked}); run `cargo build --workspace` or set {env_var}"
    )


# Ports free_port has handed out in this process: the kernel may offer a closed one again at once,
# and two calls for one instance (its listen and admin ports) must not get the same.
_handed_out: set[int] = set()


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port free a moment ago on every address, that this process was not given before,
    and outside the kernel's ephemeral range. Outgoing connections take their local port from that
    range, and one kept open (a pooled provider connection idles for a minute) on a port handed
    out here would keep its listener from binding it."""
    low, _ = _ephemeral_ports()
    candidates = range(10_000, low) if low > 11_000 else range(low, 65_536)
    while True:
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def ipv6_loopback() -> bool:
    """Whether [::1] can be listened on (a machine or container may have IPv6 off)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


class Process:
    """A child process whose stdout and stderr go to one log file. One a failed test left running
    is stopped when the test run ends (`stop_leftovers`), not left behind as a daemon."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env
        )
        _started.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self, limit: int = 20_000) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return text if len(text) <= limit else "…" + text[-limit:]

    def describe_failure(self, what: str) -> str:
        code = self.popen.poll()
        state = f"exited with {code}" if code is not None else "still running"
        return f"{self.name} {what} ({state}); command: {' '.join(self.argv)}\n--- {self.name} log ---\n{self.log_text()}"

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL; return the exit code (None if it had to be killed)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=grace_s)
                self._log.close()
                return None
        self._log.close()
        return self.popen.returncode


# Every Process started in this test run, for `stop_leftovers`.
_started: list[Process] = []


def stop_leftovers() -> list[str]:
    """Stops every process still running that this test run started; returns their names."""
    left = [p for p in _started if p.alive()]
    for proc in left:
        proc.stop(grace_s=2.0)
    return [proc.name for proc in left]


LISTENING = re.compile(rb"listening on (127\.[0-9.]+):(\d+)")


def start_sim(
    binary: Path, fixtures: Path, openai_key: str, anthropic_key: str, workdir: Path, extra: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> tuple[Process, int]:
    """Start provider-sim on an OS-assigned port of loopback address `host` (`extra` arguments
    appended, e.g. `--synthesize`); return it and the port it printed."""
    argv = [
        str(binary), "--listen", f"{host}:0", "--fixtures", str(fixtures),
        "--openai-key", openai_key, "--anthropic-key", anthropic_key, *extra,
    ]
    proc = Process("provider-sim", argv, workdir / "provider-sim.log", workdir, dict(os.environ))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = LISTENING.search(proc.log_path.read_bytes())
        if match:
            return proc, int(match.group(2))
        if not proc.alive():
            break
        time.sleep(0.05)
    message = proc.describe_failure(f"did not print `listening on {host}:PORT`")
    proc.stop()
    raise RuntimeError(message)


def wait_ready(proc: Process, admin: str, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll GET http://ADMIN/readyz until 200; raise with the process log when it never comes."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx2.Client(timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if not proc.alive():
                break
            try:
                resp = http.get(f"http://{admin}/readyz")
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx2.TransportError as err:
                last = repr(err)
            time.sleep(0.1)
    raise RuntimeError(proc.describe_failure(f"not ready at http://{admin}/readyz within {timeout_s}s (last: {last})"))


def start_tailmeter(
    binary: Path, config: Path, workdir: Path, env: dict[str, str], ready_at: str | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> Process:
    """Start `tailmeter serve --config FILE` in `workdir` (where any default event sink lands);
    with `ready_at` (its admin address), wait until it is ready, stopping it if it never is.
    `wrap` turns the command into the one to run (which must exec it)."""
    full_env = dict(os.environ)
    full_env.update(env)
    argv = [str(binary), "serve", "--config", str(config)]
    if wrap is not None:
        argv = wrap(argv)
    proc = Process("tailmeter", argv, workdir / "tailmeter.log", workdir, full_env)
    if ready_at is not None:
        try:
            wait_ready(proc, ready_at)
        except RuntimeError:
            proc.stop()
            raise
    return proc
