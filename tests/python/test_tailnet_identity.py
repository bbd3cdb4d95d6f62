"""Tailnet identity end to end: tailmeter asks a stand-in tailscaled (a unix
socket answering LocalAPI whois in tailscale's own JSON shape) who each
loopback address is, grants models from the config and from the tailnet
policy's capability, and explains itself in /tailmeter/whoami and in every
refusal. Also: serve headers, a stalled or missing tailscaled, the whois
cache under 10,000 requests from 50 identities, and the `__other__` bound.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import config as cfg
from harness import expected
from harness.clients import Tailmeter, http_client
from harness.metrics import Expect
from harness.procs import ipv6_loopback
from harness.sim import Sim, new_marker
from harness.tailnet import CAPABILITY, Setup, Static, chat, launch, messages, whoami
from harness.tailscaled import FakeTailscaled

ALICE_SRC, CI_K8S_SRC, K8S_SRC, NOBODY_SRC, STALL_SRC = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"
STATIC_SRC = "127.0.0.1"
ALICE = "alice@example.com"
STATIC = "static@example.com"
# Every model of the standard providers, qualified, and the API family that serves it.
MODELS = {f"openai/{m}": "openai" for m in cfg.OPENAI_MODELS} | {f"anthropic/{m}": "anthropic" for m in cfg.ANTHROPIC_MODELS}
# What each caller is granted: alice by [[grants]] (openai/*) and by capability (claude-sonnet);
# the egress proxy tagged tag:ci,tag:k8s by capability only; tag:k8s alone by nothing.
GRANTED = {
    ALICE_SRC: {*(f"openai/{m}" for m in cfg.OPENAI_MODELS), "anthropic/claude-sonnet-4-5"},
    CI_K8S_SRC: {"anthropic/claude-haiku-4-5", "openai/gpt-5-nano"},
    K8S_SRC: set(),
    STATIC_SRC: {"openai/gpt-4o"},
}


@pytest.fixture(scope="module")
def tsd() -> Iterator[FakeTailscaled]:
    fake = FakeTailscaled()
    fake.add_user(ALICE_SRC, ALICE, "Alice Example", "alice-laptop", models=["anthropic/claude-sonnet-4-5"])
    fake.add_tagged(CI_K8S_SRC, ["tag:k8s", "tag:ci"], "ts-egress-llm", models=["anthropic/claude-haiku-*", "openai/gpt-5-nano"])
    fake.add_tagged(K8S_SRC, ["tag:k8s"], "k8s-operator-egress")
    fake.add_user(STALL_SRC, "late@example.com", "Late", "late-box")
    for i in range(1, 51):
        fake.add_user(f"127.0.1.{i}", f"user{i:02d}@example.com", f"User {i}", f"box-{i}")
    yield fake
    fake.stop()


def _keys(sim: Sim) -> dict[str, str]:
    return {cfg.OPENAI_KEY_ENV: sim.openai_key, cfg.ANTHROPIC_KEY_ENV: sim.anthropic_key}


@pytest.fixture(scope="module")
def tm(binaries: dict[str, Path], sim: Sim, tsd: FakeTailscaled, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailmeter]:
    setup = Setup(
        socket=str(tsd.socket),
        capability=CAPABILITY,
        whois_timeout="300ms",
        cache_ttl="10m",
        negative_cache_ttl="1s",
        statics=[Static(f"{STATIC_SRC}/32", login=STATIC)],
        grants=[([ALICE], ["openai/*"]), ([STATIC], ["openai/gpt-4o"])],
    )
    instance = launch(binaries["tailmeter"], tmp_path_factory.mktemp("tailnet"), setup, sim.base_url, _keys(sim))
    yield instance
    instance.proc.stop()


def _error_message(resp) -> str:
    body = resp.json()
    return body["error"]["message"]


def test_each_address_gets_its_tailnet_identity(tm: Tailmeter, tsd: FakeTailscaled) -> None:
    alice = whoami(tm, ALICE_SRC).json()
    assert (alice["identity"], alice["login"], alice["display_name"]) == (ALICE, ALICE, "Alice Example")
    assert (alice["tags"], alice["node"]) == ([], "alice-laptop")
    assert alice["node_id"].endswith("CNTRL")
    tagged = whoami(tm, CI_K8S_SRC).json()
    assert (tagged["identity"], tagged["login"], tagged["tags"]) == ("tag:ci,tag:k8s", None, ["tag:ci", "tag:k8s"])
    assert tagged["node"] == "ts-egress-llm"
    assert whoami(tm, K8S_SRC).json()["identity"] == "tag:k8s"
    assert whoami(tm, STATIC_SRC).json()["identity"] == STATIC, "a static entry wins over whois"
    assert tsd.lookups(STATIC_SRC) == 0
    # The LocalAPI call: the right Host and the peer's own IP:PORT.
    request = next(r for r in tsd.requests if r.ip == ALICE_SRC)
    assert request.method == "GET" and request.target.startswith("/localapi/v0/whois?addr=127.0.0.2:")
    assert request.headers["host"] == "local-tailscaled.sock"
    assert 0 < request.port < 65536


def test_identities_reach_metrics(tm: Tailmeter) -> None:
    delta = tm.metrics.delta()
    assert chat(tm, ALICE_SRC, "gpt-4o").status_code == 200
    assert chat(tm, CI_K8S_SRC, "gpt-5-nano").status_code == 200
    usage = expected.CHAT_NONSTREAM
    delta.expect_usage(identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=usage)
    delta.expect_usage(identity="tag:ci,tag:k8s", provider="openai", model="gpt-5-nano", endpoint="chat_completions", usage=usage)
    delta.expect([
        Expect("tailmeter_tag_tokens_total", {"tag": tag, "model": "gpt-5-nano", "type": t}, n)
        for tag in ("tag:ci", "tag:k8s")
        for t, n in usage.by_type().items()
    ])


@pytest.mark.parametrize("src", [ALICE_SRC, CI_K8S_SRC, K8S_SRC, STATIC_SRC])
def test_listed_models_are_exactly_the_callable_ones(tm: Tailmeter, src: str) -> None:
    with http_client(src) as http:
        openai_list = http.get(f"{tm.base_url}/v1/models").json()
        anthropic_list = http.get(f"{tm.base_url}/v1/models", headers={"anthropic-version": "2023-06-01"}).json()
    listed = {"openai": {m["id"] for m in openai_list["data"]}, "anthropic": {m["id"] for m in anthropic_list["data"]}}
    me = whoami(tm, src).json()
    for qualified, api in MODELS.items():
        bare = qualified.split("/", 1)[1]
        resp = chat(tm, src, bare) if api == "openai" else messages(tm, src, bare)
        callable_ = resp.status_code == 200
        assert callable_ == (bare in listed[api]), f"{src} {qualified}: HTTP {resp.status_code}, listed {listed[api]}"
        assert callable_ == (qualified in GRANTED[src]), f"{src} {qualified}: {resp.text[:300]}"
        entry = next(m for m in me["models"] if m["qualified"] == qualified)
        assert entry["granted"] == callable_, entry
        if not callable_:
            assert resp.status_code == 403, resp.text
            assert me["identity"] in resp.text and qualified in resp.text and "not granted" in resp.text
    # The model lists never offer a model through the wrong API family.
    assert not listed["openai"] & set(cfg.ANTHROPIC_MODELS)
    assert not listed["anthropic"] & set(cfg.OPENAI_MODELS)


def test_whoami_says_which_grant(tm: Tailmeter) -> None:
    models = {m["qualified"]: m for m in whoami(tm, ALICE_SRC).json()["models"]}
    assert models["openai/gpt-4o"]["grant"] == "grants[0]"
    assert models["anthropic/claude-sonnet-4-5"]["grant"] == f"tailnet policy capability {CAPABILITY}"
    assert models["anthropic/claude-sonnet-4-5"]["endpoints"] == ["/v1/messages"]
    assert models["anthropic/claude-haiku-4-5"]["granted"] is False
    assert models["anthropic/claude-haiku-4-5"]["grant"] is None


def test_the_aperture_case_is_explained(tm: Tailmeter) -> None:
    """tag:k8s asks for claude-haiku-4-5: the refusal names identity, model and reason."""
    resp = messages(tm, K8S_SRC, "claude-haiku-4-5")
    assert resp.status_code == 403
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    message = body["error"]["message"]
    for part in ("tag:k8s", "anthropic/claude-haiku-4-5", "not granted", CAPABILITY, "granted no models"):
        assert part in message, message


def test_unknown_address_is_refused_with_the_reason(tm: Tailmeter, tsd: FakeTailscaled) -> None:
    resp = chat(tm, NOBODY_SRC, "gpt-4o")
    assert resp.status_code == 403
    message = _error_message(resp)
    assert NOBODY_SRC in message and "tailscaled knows no node" in message and "__unidentified__" in message
    # The negative answer is cached briefly, then asked again.
    before = tsd.lookups(NOBODY_SRC)
    assert chat(tm, NOBODY_SRC, "gpt-4o").status_code == 403
    assert tsd.lookups(NOBODY_SRC) == before
    time.sleep(1.2)
    assert chat(tm, NOBODY_SRC, "gpt-4o").status_code == 403
    assert tsd.lookups(NOBODY_SRC) == before + 1


def test_spoofed_login_header_changes_nothing(tm: Tailmeter, sim: Sim) -> None:
    marker = new_marker()
    spoof = {"Tailscale-User-Login": "mallory@example.com", "Tailscale-User-Name": "Mallory", **marker}
    delta = tm.metrics.delta()
    resp = chat(tm, ALICE_SRC, "gpt-4o", headers=spoof)
    assert resp.status_code == 200
    delta.expect_usage(identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=expected.CHAT_NONSTREAM)
    assert delta.now("tailmeter_requests_total", identity="mallory@example.com") == 0
    upstream = sim.one(marker)
    assert upstream.header("tailscale-user-login") == [] and upstream.header("tailscale-user-name") == []
    with http_client(ALICE_SRC) as http:
        me = http.get(f"{tm.base_url}/tailmeter/whoami", headers=spoof).json()
    assert me["identity"] == ALICE


def test_trusted_serve_headers_from_loopback(binaries, sim: Sim, tmp_path: Path) -> None:
    """With the option on, `tailscale serve`'s headers name the caller; they still never go upstream."""
    setup = Setup(socket="", trust_serve_headers=True, statics=[Static("127.0.0.0/8", login=STATIC)])
    tm = launch(binaries["tailmeter"], tmp_path, setup, sim.base_url, _keys(sim))
    try:
        marker = new_marker()
        headers = {"Tailscale-User-Login": "bob@example.com", "Tailscale-User-Name": "Bob", **marker}
        delta = tm.metrics.delta()
        assert chat(tm, "127.0.0.7", "gpt-4o", headers=headers).status_code == 200
        delta.expect_usage(identity="bob@example.com", provider="openai", model="gpt-4o", endpoint="chat_completions", usage=expected.CHAT_NONSTREAM)
        upstream = sim.one(marker)
        assert upstream.header("tailscale-user-login") == [] and upstream.header("tailscale-user-name") == []
        assert whoami(tm, "127.0.0.7").json()["identity"] == STATIC, "without the header: the static entry"
    finally:
        tm.proc.stop()


def test_stalled_tailscaled_fails_closed_then_recovers(tm: Tailmeter, tsd: FakeTailscaled) -> None:
    assert whoami(tm, ALICE_SRC).status_code == 200  # cached before the stall
    delta = tm.metrics.delta()
    tsd.stall = True
    try:
        started = time.monotonic()
        resp = chat(tm, STALL_SRC, "gpt-4o")
        elapsed = time.monotonic() - started
        assert resp.status_code == 503, resp.text
        message = _error_message(resp)
        assert "did not answer whois" in message and "on_tailscaled_down" in message
        assert elapsed < 2.0, f"the whois timeout is 300ms, the refusal took {elapsed:.2f}s"
        assert whoami(tm, ALICE_SRC).json()["identity"] == ALICE, "cached callers are unaffected"
    finally:
        tsd.stall = False
    assert delta.now("tailmeter_identity_lookups_total", source="whois", result="timeout") == 1
    time.sleep(1.2)  # the failure is cached for negative_cache_ttl
    assert whoami(tm, STALL_SRC).json()["identity"] == "late@example.com"


def test_missing_tailscaled_with_fallback(binaries, sim: Sim, tmp_path: Path) -> None:
    """No socket at the path: start works, and `fallback` hands the caller to `unknown`."""
    setup = Setup(socket=str(tmp_path / "no-such" / "tailscaled.sock"), unknown="anonymous", on_tailscaled_down="fallback")
    tm = launch(binaries["tailmeter"], tmp_path, setup, sim.base_url, _keys(sim))
    try:
        assert whoami(tm, "127.0.0.8").json()["identity"] == "anonymous"
        assert tm.metrics.value("tailmeter_identity_lookups_total", source="whois", result="unreachable") == 1
        assert tm.metrics.value("tailmeter_identity_lookups_total", source="policy", result="anonymous") == 1
    finally:
        tm.proc.stop()


def test_whois_cache_under_load(tm: Tailmeter, tsd: FakeTailscaled, capsys: pytest.CaptureFixture[str]) -> None:
    """10,000 requests from 50 identities: 50 whois calls, the rest from the cache."""
    sources = [f"127.0.1.{i}" for i in range(1, 51)]
    before = tm.metrics.scrape()
    whois_before = tsd.lookups()
    clients = {src: http_client(src, timeout=10.0) for src in sources}
    static_client = http_client(STATIC_SRC, timeout=10.0)
    first: list[float] = []
    cached: list[float] = []
    try:
        for src in sources:  # connect first: an unknown path is refused before identity resolution
            assert clients[src].get(f"{tm.base_url}/warm-up").status_code == 404
        for i in range(10_000):
            src = sources[i % 50]
            started = time.perf_counter()
            resp = clients[src].get(f"{tm.base_url}/v1/models")
            (first if i < 50 else cached).append(time.perf_counter() - started)
            assert resp.status_code == 200, resp.text
        static = []
        for _ in range(1000):
            started = time.perf_counter()
            assert static_client.get(f"{tm.base_url}/v1/models").status_code == 200
            static.append(time.perf_counter() - started)
    finally:
        for c in clients.values():
            c.close()
        static_client.close()
    after = tm.metrics.scrape()

    def moved(result: str, source: str) -> float:
        key = ("tailmeter_identity_lookups_total", frozenset({("source", source), ("result", result)}))
        return after.get(key, 0) - before.get(key, 0)

    assert tsd.lookups() - whois_before == 50, "the warm-up requests asked no whois"
    assert moved("found", "whois") == 50
    assert moved("found", "cache") == 9_950
    for src in sources[:3]:
        assert whoami(tm, src).json()["identity"].startswith("user")
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    p99 = lambda xs: sorted(xs)[int(len(xs) * 0.99)] * 1000  # noqa: E731
    with capsys.disabled():
        print(
            f"\n[whois cache] 10000 GET /v1/models from 50 identities: whois calls 50, cache hits 9950; "
            f"median latency: first (whois) {ms(first):.2f} ms, cached {ms(cached):.2f} ms "
            f"(p99 {p99(cached):.2f} ms), static identity {ms(static):.2f} ms (p99 {p99(static):.2f} ms)"
        )


def test_identity_labels_are_bounded(binaries, sim: Sim, tmp_path: Path) -> None:
    """Past `max_identities`, identities and tags count under `__other__`."""
    statics = [Static(f"127.0.2.{i}/32", login=f"u{i}@example.com") for i in range(1, 5)]
    statics += [Static(f"127.0.3.{i}/32", tags=[f"tag:t{i}"]) for i in range(1, 5)]
    tm = launch(binaries["tailmeter"], tmp_path, Setup(statics=statics, max_identities=2), sim.base_url, _keys(sim))
    try:
        delta = tm.metrics.delta()
        for entry in statics:
            assert chat(tm, entry.cidr.split("/")[0], "gpt-4o").status_code == 200
        per_type = expected.CHAT_NONSTREAM.by_type()
        delta.expect(
            [Expect("tailmeter_requests_total", {"identity": "__other__"}, 6)]
            + [Expect("tailmeter_tokens_total", {"identity": "__other__", "type": t}, 6 * n) for t, n in per_type.items()]
            + [Expect("tailmeter_tag_tokens_total", {"tag": "__other__", "type": t}, 2 * n) for t, n in per_type.items()]
        )
        series = tm.metrics.scrape()
        identities = {dict(labels)["identity"] for (name, labels) in series if name == "tailmeter_requests_total"}
        assert identities == {"u1@example.com", "u2@example.com", "__other__"}, identities
        tags = {dict(labels)["tag"] for (name, labels) in series if name == "tailmeter_tag_tokens_total"}
        assert tags == {"tag:t1", "tag:t2", "__other__"}, tags
    finally:
        tm.proc.stop()


def test_a_dual_stack_listener_knows_ipv4_and_ipv6_callers(
    binaries: dict[str, Path], sim: Sim, tsd: FakeTailscaled, tmp_path: Path
) -> None:
    """`listen = "[::]:PORT"`, one socket for both families: an IPv4 caller arrives as
    `::ffff:127.0.0.2` and is asked about as the IPv4 address it is; an IPv6 caller (a tailnet's
    fd7a:115c:a1e0::/48 addresses; `::1` here) is asked about with its address in brackets. Each
    is metered as itself."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    six = "six@example.com"
    tsd.add_user("::1", six, "Six", "v6-box")
    setup = Setup(socket=str(tsd.socket), grants=[([ALICE, six], ["openai/*"])])
    tm = launch(binaries["tailmeter"], tmp_path, setup, sim.base_url, _keys(sim), listen_host="[::]")
    try:
        port = tm.listen.rsplit(":", 1)[1]
        over_v4 = Tailmeter(tm.proc, f"127.0.0.1:{port}", tm.admin)
        over_v6 = Tailmeter(tm.proc, f"[::1]:{port}", tm.admin)
        asked_v4, asked_v6 = tsd.lookups(ALICE_SRC), tsd.lookups("::1")
        delta = tm.metrics.delta()
        assert chat(over_v4, ALICE_SRC, "gpt-4o").status_code == 200
        assert chat(over_v6, "::1", "gpt-4o").status_code == 200
        assert whoami(over_v6, "::1").json()["identity"] == six
        assert tsd.lookups(ALICE_SRC) == asked_v4 + 1 and tsd.lookups("::1") == asked_v6 + 1
        assert tsd.lookups("::ffff:" + ALICE_SRC) == 0
        who = {"provider": "openai", "model": "gpt-4o", "endpoint": "chat_completions", "code": "200"}
        delta.expect([Expect("tailmeter_requests_total", {**who, "identity": ALICE}, 1),
                      Expect("tailmeter_requests_total", {**who, "identity": six}, 1)])
    finally:
        tm.proc.stop()
