"""The system call filter of a systemd unit, applied to a process started without systemd.

systemd is not PID 1 where the tests run, so `SystemCallFilter=` is rebuilt here the way
systemd builds it: the unit's lines read in order (the first decides between an allow list and
a deny list, each later one adds or removes calls), every `@group` expanded with systemd's own
definition (`systemd-analyze syscall-filter`). A call outside the set kills the whole process,
even where the unit's `SystemCallErrorNumber=` would have it fail with an errno instead: a call
the unit would refuse shows as a dead process, not as an error the program may have swallowed.
The filter is loaded through libseccomp, as systemd does, by this file run as a program just
before it execs the command (`wrap`).

    python3 seccomp.py FILTER_FILE -- COMMAND...
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# libseccomp's actions (seccomp.h).
ACT_KILL_PROCESS = 0x80000000
ACT_ALLOW = 0x7FFF0000


@dataclass(frozen=True)
class UnitFilter:
    """The system calls a unit allows."""

    allowed: frozenset[str]

    def wrap(self, workdir: Path):
        """A `start_tailmeter` wrap: the command, run under this filter."""
        path = workdir / "syscall-filter.json"
        path.write_text(json.dumps(sorted(self.allowed)))
        return lambda argv: [sys.executable, str(Path(__file__).resolve()), str(path), "--", *argv]


def available() -> str | None:
    """Why a unit's filter cannot be rebuilt here, or None when it can."""
    if shutil.which("systemd-analyze") is None:
        return "systemd-analyze (Debian's systemd package) is missing"
    if ctypes.util.find_library("seccomp") is None:
        return "libseccomp is missing"
    return None


def groups() -> dict[str, list[str]]:
    """systemd's `@group` definitions: each group's members, calls or nested groups."""
    text = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                          check=True, timeout=30).stdout
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = found.setdefault(line.strip(), [])
        elif not line.strip():
            current = None
        elif current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
    return found


def expand(names: list[str], defined: dict[str, list[str]]) -> set[str]:
    """The system calls `names` stand for, groups expanded."""
    calls: set[str] = set()
    for name in names:
        if name.startswith("@"):
            calls |= expand(defined[name], defined)
        else:
            calls.add(name)
    return calls


def from_unit(unit: str) -> UnitFilter:
    """The filter of a unit file's text, as systemd would build it."""
    defined = groups()
    allowed: set[str] | None = None
    for line in unit.splitlines():
        key, _, value = line.partition("=")
        if key == "SystemCallFilter":
            deny = value.startswith("~")
            calls = expand(value.lstrip("~").split(), defined)
            if allowed is None:
                # A first deny list would start from everything: not what the units here do.
                assert not deny, "a unit whose filter starts with a deny list"
                allowed = calls
            elif deny:
                allowed -= calls
            else:
                allowed |= calls
    assert allowed is not None, "the unit has no SystemCallFilter="
    return UnitFilter(frozenset(allowed))


def load(unit_filter: UnitFilter) -> None:
    """Loads the filter on this process (inherited across exec); calls libseccomp does not know
    on this machine are left out, as systemd leaves them out."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp"), use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(ACT_KILL_PROCESS)
    assert ctx, "seccomp_init failed"
    for name in unit_filter.allowed:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp
            continue
        status = lib.seccomp_rule_add(ctypes.c_void_p(ctx), ctypes.c_uint32(ACT_ALLOW), ctypes.c_int(number),
                                      ctypes.c_uint(0))
        assert status == 0, f"seccomp_rule_add({name}): {os.strerror(-status)}"
    status = lib.seccomp_load(ctx)
    assert status == 0, f"seccomp_load: {os.strerror(-status)}"


def main(argv: list[str]) -> None:
    allowed = json.loads(Path(argv[1]).read_text())
    assert argv[2] == "--", argv
    load(UnitFilter(frozenset(allowed)))
    os.execv(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv)
