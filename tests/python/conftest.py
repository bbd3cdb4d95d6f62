"""Session fixtures: the built binaries, provider-sim, and tailmeter instances.

`tailmeter` is the main instance every SDK test talks to. `tailmeter_limits`
is a second one with a 1 MiB body limit and providers that cannot be reached
(harness.unreachable), for the error tests. `launch_tailmeter` starts throwaway
instances for lifecycle tests. All listen on OS-assigned ports on 127.0.0.1,
run in a temporary directory, and are stopped (SIGTERM, then kill) at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import config as cfg
from harness import resolver, unreachable
from harness.clickhouse import ClickHouse, running
from harness.clients import Tailmeter
from harness.procs import REPO, find_binary, free_port, start_sim, start_tailmeter, stop_leftovers
from harness.sim import Sim

PROVIDER_OPENAI_KEY = "sk-provider-e2e-openai-31f0c2"
PROVIDER_ANTHROPIC_KEY = "sk-ant-provider-e2e-77ab19"
PROVIDER_GEMINI_KEY = "gm-provider-e2e-5d1e07"
PROVIDER_BEDROCK_KEY = "br-provider-e2e-c81a44"


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    return {
        "tailmeter": find_binary("tailmeter", "TAILMETER_BIN"),
        "sim": find_binary("provider-sim", "PROVIDER_SIM_BIN"),
    }


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return Path(os.environ.get("PROVIDER_SIM_FIXTURES", REPO / "tests" / "fixtures"))


@pytest.fixture(scope="session")
def sim(binaries: dict[str, Path], fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    workdir = tmp_path_factory.mktemp("sim")
    keys = ("--gemini-key", PROVIDER_GEMINI_KEY, "--bedrock-key", PROVIDER_BEDROCK_KEY)
    proc, port = start_sim(binaries["sim"], fixtures_dir, PROVIDER_OPENAI_KEY, PROVIDER_ANTHROPIC_KEY, workdir, keys)
    yield Sim(port, PROVIDER_OPENAI_KEY, PROVIDER_ANTHROPIC_KEY)
    proc.stop()


def launch_instance(
    binary: Path, workdir: Path, providers: list[cfg.Provider], max_body: str = "32MiB",
    grants: list[tuple[list[str], list[str]]] | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None, extra: str = "",
    client_header_timeout: str | None = None,
) -> Tailmeter:
    """A tailmeter in `workdir` (its config written there, fresh ports) with every provider key
    set, ready; `extra` is appended to the config (e.g. `[[budgets]]`)."""
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    path = workdir / "tailmeter.toml"
    path.write_text(cfg.render(cfg.TailmeterConfig(listen, admin, providers, max_body, grants, extra,
                                                   client_header_timeout=client_header_timeout)))
    env = {
        cfg.OPENAI_KEY_ENV: PROVIDER_OPENAI_KEY, cfg.ANTHROPIC_KEY_ENV: PROVIDER_ANTHROPIC_KEY,
        cfg.GEMINI_KEY_ENV: PROVIDER_GEMINI_KEY, cfg.BEDROCK_KEY_ENV: PROVIDER_BEDROCK_KEY,
    }
    proc = start_tailmeter(binary, path, workdir, env, ready_at=admin, wrap=wrap)
    return Tailmeter(proc, listen, admin)


@pytest.fixture(scope="session")
def tailmeter(binaries: dict[str, Path], sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailmeter]:
    tm = launch_instance(binaries["tailmeter"], tmp_path_factory.mktemp("tailmeter"), cfg.standard_providers(sim.base_url), "32MiB")
    yield tm
    tm.proc.stop()



@pytest.fixture(scope="session")
def synth_sim(binaries: dict[str, Path], fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """A second simulator in faithful mode: it synthesizes an answer for every request."""
    workdir = tmp_path_factory.mktemp("synth-sim")
    proc, port = start_sim(
        binaries["sim"], fixtures_dir, PROVIDER_OPENAI_KEY, PROVIDER_ANTHROPIC_KEY, workdir,
        ("--synthesize", "--gemini-key", PROVIDER_GEMINI_KEY, "--bedrock-key", PROVIDER_BEDROCK_KEY),
    )
    yield Sim(port, PROVIDER_OPENAI_KEY, PROVIDER_ANTHROPIC_KEY)
    proc.stop()


@pytest.fixture(scope="session")
def tailmeter_clients(
    binaries: dict[str, Path], synth_sim: Sim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tailmeter]:
    """The instance real client programs talk to: in front of `synth_sim`, with one configured
    but ungranted model per provider (harness.config.UNGRANTED)."""
    workdir = tmp_path_factory.mktemp("tailmeter-clients")
    providers = cfg.clients_providers(synth_sim.base_url)
    tm = launch_instance(binaries["tailmeter"], workdir, providers, "32MiB", cfg.clients_grants())
    yield tm
    tm.proc.stop()


@pytest.fixture
def spent_budget(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path) -> Iterator[Tailmeter]:
    """The client programs' instance (`tailmeter_clients`'s providers and grants) where Alice has
    a daily `reject` budget of 1 token: her first request spends it."""
    budget = '\n[[budgets]]\nname = "alice-tiny"\nidentity = "alice@example.com"\ntokens = 1\nwindow = "24h"\non_exceed = "reject"\n'
    tm = launch_instance(binaries["tailmeter"], tmp_path, cfg.clients_providers(synth_sim.base_url),
                         grants=cfg.clients_grants(), extra=budget)
    yield tm
    tm.proc.stop()


@pytest.fixture(scope="session")
def tailmeter_metering(binaries: dict[str, Path], sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailmeter]:
    """Every provider kind (Gemini and Bedrock too) in front of `sim`, plus an OpenAI provider
    with a 1 s idle_timeout (harness.config.metering_providers)."""
    workdir = tmp_path_factory.mktemp("tailmeter-metering")
    tm = launch_instance(binaries["tailmeter"], workdir, cfg.metering_providers(sim.base_url), "32MiB")
    yield tm
    tm.proc.stop()


@pytest.fixture(scope="session")
def tailmeter_limits(
    binaries: dict[str, Path], sim: Sim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tailmeter]:
    workdir = tmp_path_factory.mktemp("tailmeter-limits")
    with unreachable.blackhole() as blackhole, unreachable.self_signed_tls(workdir) as self_signed:
        base_urls = {
            "dead": f"http://127.0.0.1:{free_port()}",
            "nodns": "http://tailmeter-e2e.invalid",  # RFC 6761: never resolves
            "notls": sim.base_url.replace("http://", "https://"),
            "selfsigned": f"https://127.0.0.1:{self_signed}",
            "blackhole": f"http://127.0.0.1:{blackhole}",
        }
        providers = cfg.standard_providers(sim.base_url) + cfg.fault_providers(base_urls)
        tm = launch_instance(binaries["tailmeter"], workdir, providers, cfg.LIMITS_MAX_BODY_TOML)
        yield tm
        tm.proc.stop()


# How long the scripted resolver takes to answer a `late.` name: past the 1 s connect_timeout.
RESOLVER_LATE_S = 2.0
# The resolver instance's simulator listens on RESOLVER_SIM_HOST; nothing listens at the dead
# addresses on its port. None of them is 127.0.0.1, which glibc would sort first.
RESOLVER_SIM_HOST = "127.0.0.3"
RESOLVER_DEAD_HOSTS = ("127.0.0.2", "127.0.0.4")


@pytest.fixture(scope="module")
def tailmeter_resolver(
    binaries: dict[str, Path], fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Tailmeter, resolver.ScriptedResolver]]:
    """An instance whose system resolver is harness.resolver's scripted one (in a mount namespace
    of its own), with the providers of harness.config.resolver_providers in front of a simulator
    of its own at RESOLVER_SIM_HOST."""
    if not resolver.namespaces_allowed():
        pytest.skip("needs `unshare --mount` (root) to give tailmeter a resolv.conf of the test's")
    workdir = tmp_path_factory.mktemp("tailmeter-resolver")
    sim_proc, sim_port = start_sim(binaries["sim"], fixtures_dir, PROVIDER_OPENAI_KEY, PROVIDER_ANTHROPIC_KEY,
                                   workdir, host=RESOLVER_SIM_HOST)
    script = {
        "silent": None,
        "late": resolver.Script([RESOLVER_SIM_HOST], delay_s=RESOLVER_LATE_S),
        "pair": resolver.Script([RESOLVER_DEAD_HOSTS[0], RESOLVER_SIM_HOST]),
        "deadpair": resolver.Script(list(RESOLVER_DEAD_HOSTS)),
        "flip": resolver.Script([RESOLVER_SIM_HOST]),
    }
    with resolver.scripted_resolver(script) as scripted:
        sim_url = f"http://{RESOLVER_SIM_HOST}:{sim_port}"
        providers = cfg.standard_providers(sim_url) + cfg.resolver_providers(sim_port)
        tm = launch_instance(binaries["tailmeter"], workdir, providers, "32MiB",
                     wrap=lambda argv: resolver.run_with_resolver(workdir, argv))
        yield tm, scripted
        tm.proc.stop()
    sim_proc.stop()


@pytest.fixture
def launch_tailmeter(
    binaries: dict[str, Path], sim: Sim, tmp_path: Path
) -> Iterator[Callable[[], Tailmeter]]:
    """Start a private instance (stopped at teardown if the test did not stop it)."""
    started: list[Tailmeter] = []

    def launch() -> Tailmeter:
        workdir = tmp_path / f"tm{len(started)}"
        workdir.mkdir()
        tm = launch_instance(binaries["tailmeter"], workdir, cfg.standard_providers(sim.base_url), "32MiB")
        started.append(tm)
        return tm

    yield launch
    for tm in started:
        tm.proc.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """A private clickhouse-server shared by the fault tests (each uses its own database and
    never stops it; test_clickhouse.py keeps its own, which it stops and starts)."""
    with running(tmp_path_factory.mktemp("clickhouse-shared")) as server:
        yield server


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A test that failed before stopping its own processes leaves them running: stop them, and
    name them, so a test run never leaves a daemon behind."""
    left = stop_leftovers()
    if left:
        print(f"\nstopped {len(left)} process(es) a test left running: {', '.join(left)}")
