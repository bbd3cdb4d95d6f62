"""The step-by-step reading of a request inside the proxy (tests/bench/tmbench/steps.py), checked
on made-up `perf script` lines: the figures RESULTS.md quotes from it are only as good as the
pairing of system calls and the following of requests."""

from __future__ import annotations

import sys

from harness.procs import REPO

sys.path.insert(0, str(REPO / "tests" / "bench"))
from tmbench import steps  # noqa: E402

LISTENER, ACCEPTED, CLIENT, PROVIDER = 0x22, 0x23, 0x30, 0x40


def trace(*events: tuple[int, float, str, str, str]) -> str:
    """perf script lines: (thread, time in ms, enter/exit, system call, what follows)."""
    return "\n".join(
        f"{tid} {ms / 1000:.6f}: syscalls:sys_{side}_{name}: {rest}" for tid, ms, side, name, rest in events
    )


def call(tid: int, ms: float, name: str, fd: int, ret: int, took: float = 0.001, cmd: int | None = None):
    enter = f"fd: {fd:#010x}" + (f", cmd: {cmd:#x}" if cmd is not None else "")
    return [(tid, ms, "enter", name, enter), (tid, ms + took, "exit", name, hex(ret % (1 << 64)))]


def request(tid: int, at: float, client: int = CLIENT) -> list:
    """A request read in two pieces, sent to the provider in two, answered, sent back."""
    return [
        *call(tid, at + 0.000, "recvfrom", client, 4096),
        *call(tid, at + 0.100, "recvfrom", client, 65536),
        *call(tid, at + 0.150, "sendto", PROVIDER, 300),
        *call(tid, at + 0.160, "sendto", PROVIDER, 70000),
        *call(tid, at + 0.500, "recvfrom", PROVIDER, 1134),
        *call(tid, at + 0.530, "recvfrom", PROVIDER, -11),
        *call(tid, at + 0.550, "sendto", client, 1216),
    ]


def test_a_request_is_cut_into_its_steps() -> None:
    text = trace(
        *call(7, 0.0, "accept4", LISTENER, ACCEPTED),
        *call(7, 0.01, "fcntl", ACCEPTED, CLIENT, cmd=steps.F_DUPFD_CLOEXEC),
        *call(7, 0.02, "close", ACCEPTED, 0),
        *request(7, 1.0),
    )
    found = steps.steps(steps.calls_from_perf_script(text))
    assert found.interleaved == 0
    got = {step: round(values[0]) for step, values in found.times.items()}
    # µs: reads 0.000-0.101, sends 0.150-0.161, answer read ends 0.501, client send at 0.550.
    assert got == {"body read": 101, "check and route": 49, "provider send": 11, "provider": 340,
                   "answer and record": 49, "total": 550}


def test_requests_that_interleave_on_a_thread_are_left_out_and_others_kept() -> None:
    other = CLIENT + 1
    text = trace(
        *call(7, 0.0, "accept4", LISTENER, CLIENT),
        *call(7, 0.01, "accept4", LISTENER, other),
        *call(7, 1.0, "recvfrom", CLIENT, 4096),
        *request(7, 1.05, client=other),  # another client's request starts before the first's ends
        *request(8, 3.0),  # the first client's next request, on a thread of its own
    )
    found = steps.steps(steps.calls_from_perf_script(text))
    assert found.interleaved == 1
    assert len(found.times["total"]) == 2


def test_a_socket_the_proxy_did_not_accept_is_not_a_client() -> None:
    """Without its accept4 (or the copy of an accepted socket) a descriptor is a provider's."""
    text = trace(*request(7, 1.0, client=0x55))
    assert steps.steps(steps.calls_from_perf_script(text)).times["total"] == []
