"""Provider host names through a resolver that is slow, silent, says the name does not exist or
gives several addresses (harness.resolver, the real glibc resolver asking a scripted name
server): a request waits for an address no longer than the provider's connect_timeout,
concurrent requests share one lookup, a late answer serves the requests after it, a name that
does not exist is not asked again for every request, a dead address is passed over, and a
reload keeps what was resolved."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import httpx2
import pytest

from conftest import RESOLVER_DEAD_HOSTS, RESOLVER_LATE_S
from harness import events as ev
from harness.clients import REQUEST_ID, Tailmeter, http_client
from harness.config import ALICE, FAULT_CONNECT_TIMEOUT_S, SRC_ALICE, fault_model, resolver_host
from harness.metrics import Expect
from harness.resolver import ScriptedResolver

Instance = tuple[Tailmeter, ScriptedResolver]


def chat(tm: Tailmeter, name: str) -> tuple[httpx2.Response, float]:
    """A chat completion for the model of the `name` provider, and how long its answer took."""
    started = time.monotonic()
    with http_client(SRC_ALICE) as http:
        resp = ev.chat(http, tm, {**ev.CHAT, "model": fault_model("openai", name)})
    return resp, time.monotonic() - started


def counted(name: str, code: int, n: int) -> Expect:
    labels = {"endpoint": "chat_completions", "code": str(code), "identity": ALICE,
              "provider": f"{name}-openai", "model": fault_model("openai", name)}
    return Expect("tailmeter_requests_total", labels, n)


def refused_connects(name: str, n: int) -> Expect:
    labels = {"provider": f"{name}-openai", "reason": "refused"}
    return Expect("tailmeter_upstream_connect_failures_total", labels, n)


def test_a_silent_resolver_is_waited_for_no_longer_than_connect_timeout(tailmeter_resolver: Instance) -> None:
    """Eight requests at once for a provider whose name server never answers: each is a 504
    `upstream_connect_timeout` after the provider's 1 s connect_timeout, saying which name got
    no answer, and the name server was asked once for all of them."""
    tm, resolver = tailmeter_resolver
    host = resolver_host("silent")
    delta = tm.metrics.delta()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: chat(tm, "silent"), range(8)))
    for resp, took in answers:
        assert resp.status_code == 504, resp.text
        assert resp.headers.get(REQUEST_ID)
        error = resp.json()["error"]
        assert error["code"] == "upstream_connect_timeout", error
        assert f"provider silent-openai ({host}:" in error["message"], error
        assert f"resolving {host} gave no answer within {FAULT_CONNECT_TIMEOUT_S}s" in error["message"], error
        assert FAULT_CONNECT_TIMEOUT_S * 0.9 <= took < FAULT_CONNECT_TIMEOUT_S + 2, f"answered after {took:.1f}s"
    assert resolver.asked(host) == 1, resolver.questions
    delta.expect([counted("silent", 504, 8)])


def test_a_late_answer_serves_the_requests_after_it(tailmeter_resolver: Instance) -> None:
    """The name server answers after 2 s: the first request gives up at its 1 s connect_timeout,
    the lookup goes on, and a request once it has answered goes through without asking again."""
    tm, resolver = tailmeter_resolver
    host = resolver_host("late")
    delta = tm.metrics.delta()
    resp, took = chat(tm, "late")
    assert resp.status_code == 504, resp.text
    assert f"resolving {host} gave no answer" in resp.json()["error"]["message"]
    time.sleep(RESOLVER_LATE_S - took + 0.5)
    resp, took = chat(tm, "late")
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["total_tokens"] > 0
    assert took < FAULT_CONNECT_TIMEOUT_S, f"waited {took:.1f}s"
    assert resolver.asked(host) == 1, resolver.questions
    delta.expect([counted("late", 504, 1), counted("late", 200, 1)])


def test_a_name_that_does_not_exist_is_asked_once_a_second(tailmeter_resolver: Instance) -> None:
    """NXDOMAIN: 502 `upstream_unreachable` with the resolver's words; the requests right after
    it get the same answer without a new question, and one a second later asks again."""
    tm, resolver = tailmeter_resolver
    host = resolver_host("missing")
    delta = tm.metrics.delta()
    for _ in range(3):
        resp, _took = chat(tm, "missing")
        assert resp.status_code == 502, resp.text
        error = resp.json()["error"]
        assert error["code"] == "upstream_unreachable", error
        assert "Name or service not known" in error["message"], error
    assert resolver.asked(host) == 1, resolver.questions
    time.sleep(1.1)
    resp, _took = chat(tm, "missing")
    assert resp.status_code == 502, resp.text
    assert resolver.asked(host) == 2, resolver.questions
    delta.expect([counted("missing", 502, 4)])


def test_a_dead_address_is_passed_over_and_tried_last(tailmeter_resolver: Instance) -> None:
    """A name whose first address refuses connections: the first request goes on to the second
    address and is answered; the requests after it go there first (one refused connect in all)."""
    tm, _resolver = tailmeter_resolver
    delta = tm.metrics.delta()
    for _ in range(5):
        resp, _took = chat(tm, "pair")
        assert resp.status_code == 200, resp.text
        assert resp.json()["usage"]["total_tokens"] > 0
    sni = f"sni: {resolver_host('pair')} "
    refused = [line for line in tm.proc.log_text().splitlines() if sni in line]
    assert len(refused) == 1, refused
    assert f"{RESOLVER_DEAD_HOSTS[0]}:" in refused[0] and "ConnectRefused" in refused[0], refused
    assert "retry: true" in refused[0], refused
    delta.expect([counted("pair", 200, 5), refused_connects("pair", 1)])


def test_a_name_whose_every_address_is_dead_is_502_after_trying_each(tailmeter_resolver: Instance) -> None:
    """Both addresses refuse: 502 `upstream_unreachable` once each was tried."""
    tm, _resolver = tailmeter_resolver
    delta = tm.metrics.delta()
    resp, _took = chat(tm, "deadpair")
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["code"] == "upstream_unreachable" and "ConnectRefused" in error["message"], error
    sni = f"sni: {resolver_host('deadpair')} "
    tried = [line for line in tm.proc.log_text().splitlines() if sni in line]
    assert [f"{dead}:" in line for dead, line in zip(RESOLVER_DEAD_HOSTS, tried)] == [True, True], tried
    assert "tries: 2, retry: false" in tried[-1], tried
    delta.expect([counted("deadpair", 502, 1), refused_connects("deadpair", 2)])


def test_a_reload_keeps_the_addresses_while_the_name_server_is_silent(tailmeter_resolver: Instance) -> None:
    """A provider answered once; then its name server falls silent and the configuration is
    reloaded (SIGHUP, same file): the request after the reload still goes through, on the
    address found before it, without waiting on a lookup."""
    tm, resolver = tailmeter_resolver
    host = resolver_host("flip")
    resp, _took = chat(tm, "flip")
    assert resp.status_code == 200, resp.text
    resolver.script["flip"] = None
    reloads = tm.proc.log_text(500_000).count("configuration reloaded")
    ev.hangup_and_wait(tm, "configuration reloaded", reloads + 1)
    resp, took = chat(tm, "flip")
    assert resp.status_code == 200, resp.text
    assert took < FAULT_CONNECT_TIMEOUT_S, f"waited {took:.1f}s"
    assert resolver.asked(host) == 1, resolver.questions


@pytest.fixture(autouse=True)
def still_alive(tailmeter_resolver: Instance) -> Iterator[None]:
    tm, _ = tailmeter_resolver
    yield
    assert tm.proc.alive(), tm.proc.describe_failure("died")
