"""tailmeter under the system call filter of the shipped systemd unit (deploy/systemd).

`systemd-analyze verify` (test_deploy_manifests) says the unit is well formed, not that the
binary can live inside it: a call its `SystemCallFilter=` leaves out kills the gateway with
SIGSYS the first time it is made, which may be long after start. Here the filter is rebuilt
from the unit the way systemd builds it (harness.seccomp) and tailmeter runs under it through
each kind of work it does: start, proxy a call and a stream, estimate the input of a stream the
provider cut (the estimator thread lowers its own priority), reload on SIGHUP, stop on SIGTERM
with every row written."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx2
import pytest

from harness import events as ev
from harness import seccomp
from harness.clients import http_client
from harness.config import SRC_ALICE
from harness.procs import REPO
from harness.sim import Sim

UNIT = REPO / "deploy" / "systemd" / "tailmeter.service"
KILLED = f"ended early (exit -{signal.SIGSYS.value}: it made a call the unit forbids)"
# A prompt past the 1 KiB that tailmeter estimates where it is: its estimate goes to the
# estimator thread.
LONG_STREAM = {**ev.CHAT, "stream": True, "messages": [{"role": "user", "content": "tell me more " * 200}]}


def test_the_gateway_does_all_its_work_inside_the_units_syscall_filter(
    binaries: dict[str, Path], sim: Sim, tmp_path: Path
) -> None:
    missing = seccomp.available()
    if missing:  # .ci/run installs both: missing there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    unit_filter = seccomp.from_unit(UNIT.read_text())
    inst = ev.launch(binaries["tailmeter"], tmp_path, sim.base_url, wrap=unit_filter.wrap(tmp_path))
    tm = inst.tm
    try:
        with http_client(SRC_ALICE) as http:
            assert ev.chat(http, tm).status_code == 200
            streamed = ev.chat(http, tm, body={**ev.CHAT, "stream": True})
            assert streamed.status_code == 200 and b"data: [DONE]" in streamed.content
            with pytest.raises(httpx2.TransportError):  # the provider cuts the stream; so does tailmeter
                ev.chat(http, tm, body=LONG_STREAM, headers={"x-sim-fault": "cut-after=600"})
        data = tmp_path / "tailmeter-data"
        ev.wait_for("the cut stream's row, or tailmeter's end",
                    lambda: tm.proc.popen.poll() is not None or len(ev.json_rows(data)) == 3)
        assert tm.proc.popen.poll() is None, tm.proc.describe_failure(KILLED)
        ev.hangup_and_wait(tm, "configuration reloaded", 1)
        with http_client(SRC_ALICE) as http:
            assert ev.chat(http, tm).status_code == 200
    finally:
        code = tm.proc.stop()
    assert code == 0, tm.proc.describe_failure(KILLED)
    rows = ev.json_rows(data)
    assert [r["usage_source"] for r in rows] == ["provider", "provider", "estimated", "provider"], rows
    assert int(rows[2]["input_tokens"]) > 200, rows[2]
    log = tm.proc.log_path.read_text()
    assert "cannot lower the input estimator's priority" not in log, log[-3000:]
