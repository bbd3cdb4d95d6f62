"""The setups the same load goes through: direct, nginx, the bare Pingora baseline, tailmeter
(embedded sink or ClickHouse sink) and LiteLLM, each started on loopback against bench-upstream
and stopped after its runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .bodies import ANTHROPIC_MODEL, CLIENT_KEY, OPENAI_MODEL, SLOW

HERE = Path(__file__).resolve().parent.parent
REPO = HERE.parents[1]


@dataclass
class Context:
    """What every setup needs: where to work, the upstream, the binaries."""

    work: Path
    upstream: str  # host:port
    tailmeter: Path
    litellm: Path | None
    threads: int


class Setup:
    """A proxy (or none) between the load and the upstream."""

    name = ""
    title = ""

    def __init__(self) -> None:
        self.url = ""
        self.child: procs.Child | None = None

    def start(self, ctx: Context) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        return procs.tree(self.child.pid) if self.child else []

    def stop(self) -> None:
        if self.child:
            self.child.stop()
            self.child = None

    def describe(self) -> str:
        """What was on, for the results."""
        return self.title


class Direct(Setup):
    name, title = "direct", "direct to the upstream (the limit)"

    def start(self, ctx: Context) -> None:
        self.url = f"http://{ctx.upstream}"


class Nginx(Setup):
    name, title = "nginx", "nginx, plain reverse proxy, unbuffered"

    def start(self, ctx: Context) -> None:
        work = ctx.work / "nginx"
        work.mkdir(parents=True, exist_ok=True)
        port = procs.free_port()
        conf = (HERE / "nginx.conf").read_text()
        for key, value in {"@WORKERS@": str(ctx.threads), "@DIR@": str(work),
                           "@PORT@": str(port), "@UPSTREAM@": ctx.upstream}.items():
            conf = conf.replace(key, value)
        (work / "nginx.conf").write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [nginx, "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(work / "error.log")]
        self.child = procs.Child("nginx", argv, work / "stdout.log")
        self.url = f"http://127.0.0.1:{port}"
        procs.wait_http(self.url + "/", 15, self.child, ok=lambda status: True)


class Pingora(Setup):
    name, title = "pingora", "Pingora alone: the same Pingora build with its default runtime (work stealing), forwarding to the upstream, nothing metered"

    def start(self, ctx: Context) -> None:
        port = procs.free_port()
        binary = ctx.tailmeter.parent / "examples" / "pingora_baseline"
        argv = [str(binary), f"127.0.0.1:{port}", ctx.upstream, str(ctx.threads)]
        self.child = procs.Child("pingora", argv, ctx.work / "pingora.log")
        self.url = f"http://127.0.0.1:{port}"
        procs.wait_http(self.url + "/", 15, self.child, ok=lambda status: True)


TAILMETER_CONFIG = """
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
threads = {threads}

[identity]
tailscale_socket = ""
unknown = "anonymous"

[[identity.static]]
cidr = "127.0.0.1/32"
login = "bench@example.com"

[[providers]]
name = "openai"
kind = "openai"
base_url = "http://{upstream}"
api_key = "sk-bench-openai"
models = ["{openai}", "{openai}{slow}"]

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://{upstream}"
api_key = "sk-bench-anthropic"
models = ["{anthropic}", "{anthropic}{slow}"]

[prices."{openai}"]
input = 2.50
output = 10.00
cache_read = 1.25

[prices."{anthropic}"]
input = 3.00
output = 15.00
cache_read = 0.30
cache_write = 3.75

[events]
dir = "{events}"
"""


class Tailmeter(Setup):
    name, title = "tailmeter", "tailmeter, metrics + embedded JSON-lines sink"

    def extra_config(self, ctx: Context) -> str:
        return ""

    def start(self, ctx: Context) -> None:
        work = ctx.work / self.name
        work.mkdir(parents=True, exist_ok=True)
        port, admin = procs.free_ports(2)
        config = TAILMETER_CONFIG.format(port=port, admin=admin, threads=ctx.threads, upstream=ctx.upstream,
                                         openai=OPENAI_MODEL, anthropic=ANTHROPIC_MODEL, slow=SLOW,
                                         events=work / "events")
        (work / "tailmeter.toml").write_text(config + self.extra_config(ctx))
        argv = [str(ctx.tailmeter), "serve", "--config", str(work / "tailmeter.toml")]
        self.child = procs.Child("tailmeter", argv, work / "tailmeter.log")
        self.url = f"http://127.0.0.1:{port}"
        procs.wait_http(f"http://127.0.0.1:{admin}/readyz", 30, self.child, ok=lambda s: s == 200)


class TailmeterClickHouse(Tailmeter):
    name, title = "tailmeter-ch", "tailmeter, metrics + ClickHouse sink"

    def __init__(self) -> None:
        super().__init__()
        self.clickhouse = None

    @staticmethod
    def available() -> bool:
        sys.path.insert(0, str(REPO / "tests" / "python"))
        try:
            from harness.clickhouse import find_server  # noqa: PLC0415
        except ImportError:
            return False
        return find_server() is not None

    def extra_config(self, ctx: Context) -> str:
        from harness.clickhouse import ClickHouse, find_server  # noqa: PLC0415

        self.clickhouse = ClickHouse(find_server(), ctx.work / "clickhouse")
        self.clickhouse.start()
        return f'\n[clickhouse]\nurl = "{self.clickhouse.url}"\ndatabase = "tailmeter_bench"\n'

    def rows(self) -> int | None:
        """Rows the sink wrote, to show it kept up."""
        try:
            return int(self.clickhouse.scalar("SELECT count() FROM tailmeter_bench.requests"))
        except Exception:  # noqa: BLE001 - a count is informative only
            return None

    def stop(self) -> None:
        super().stop()
        if self.clickhouse:
            self.clickhouse.stop()
            self.clickhouse = None


LITELLM_CONFIG = """
model_list:
  - model_name: {openai}
    litellm_params: {{model: "openai/{openai}", api_base: "http://{upstream}/v1", api_key: sk-bench-openai}}
  - model_name: {openai}{slow}
    litellm_params: {{model: "openai/{openai}{slow}", api_base: "http://{upstream}/v1", api_key: sk-bench-openai}}
  - model_name: {anthropic}
    litellm_params: {{model: "anthropic/{anthropic}", api_base: "http://{upstream}", api_key: sk-bench-anthropic}}
  - model_name: {anthropic}{slow}
    litellm_params: {{model: "anthropic/{anthropic}{slow}", api_base: "http://{upstream}", api_key: sk-bench-anthropic}}
litellm_settings:
  callbacks: ["prometheus"]
general_settings:
  master_key: {key}
"""


class LiteLLM(Setup):
    name, title = "litellm", "LiteLLM proxy, Prometheus callback on"

    def __init__(self) -> None:
        super().__init__()
        self.version = ""

    def start(self, ctx: Context) -> None:
        work = ctx.work / "litellm"
        work.mkdir(parents=True, exist_ok=True)
        port = procs.free_port()
        (work / "config.yaml").write_text(LITELLM_CONFIG.format(
            openai=OPENAI_MODEL, anthropic=ANTHROPIC_MODEL, slow=SLOW, upstream=ctx.upstream, key=CLIENT_KEY))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "LITELLM"))}
        env |= {"LITELLM_LOG": "ERROR", "NO_DOCS": "True", "DISABLE_ADMIN_UI": "True",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true"}
        argv = [str(ctx.litellm), "--config", str(work / "config.yaml"), "--host", "127.0.0.1",
                "--port", str(port), "--num_workers", str(ctx.threads)]
        self.child = procs.Child("litellm", argv, work / "litellm.log", env=env, cwd=work)
        self.url = f"http://127.0.0.1:{port}"
        procs.wait_http(self.url + "/health/liveliness", 300, self.child, ok=lambda s: s == 200)
        python = ctx.litellm.parent / "python"
        self.version = os.popen(f"{python} -c 'import importlib.metadata as m; print(m.version(\"litellm\"))'"
                                ).read().strip()

    def describe(self) -> str:
        return f"{self.title} (litellm {self.version}, {self.metrics_state()})"

    def metrics_state(self) -> str:
        """Whether /metrics served LiteLLM's own series."""
        import urllib.request  # noqa: PLC0415

        request = urllib.request.Request(self.url + "/metrics/", headers={"authorization": f"Bearer {CLIENT_KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                text = resp.read().decode(errors="replace")
        except OSError as error:
            return f"/metrics unavailable: {error}"
        return "/metrics serving litellm_* series" if "litellm_" in text else "/metrics without litellm_* series"


def build(names: list[str]) -> list[Setup]:
    known = {cls.name: cls for cls in (Direct, Nginx, Pingora, Tailmeter, TailmeterClickHouse, LiteLLM)}
    return [known[name]() for name in names]


@contextlib.contextmanager
def tailmeter_on_upstream(bin_dir: Path, upstream_bin: Path, work: Path, answers: Path, threads: int,
                          upstream_threads: int | None = None) -> Iterator[Tailmeter]:
    """bench-upstream serving `answers` and the tailmeter of `bin_dir` in front of it, for the
    lab tools (`tmbench.profile`, `.steps`, `.hangups`): started in `work`, stopped after."""
    upstream = procs.Child("bench-upstream", [str(upstream_bin), "--listen", "127.0.0.1:0", "--bodies", str(answers),
                                              "--threads", str(upstream_threads or threads)], work / "upstream.log")
    proxy = Tailmeter()
    try:
        address = upstream.first_line("listening on ").split()[-1]
        proxy.start(Context(work, address, bin_dir / "tailmeter", None, threads))
        yield proxy
    finally:
        proxy.stop()
        upstream.stop()
