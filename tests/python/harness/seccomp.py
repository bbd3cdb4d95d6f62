"""System call filters rebuilt outside the managers that would apply them, run as a program
to load one and exec a command under it.

- A systemd unit's `SystemCallFilter=` (`from_unit`): systemd is not PID 1 where the tests run,
  so the filter is rebuilt the way systemd builds it: the unit's lines read in order (the first
  decides between an allow list and a deny list, each later one adds or removes calls), every
  `@group` expanded with systemd's own definition (`systemd-analyze syscall-filter`).
- A container runtime's seccomp profile in the OCI JSON form (`from_oci_profile`), as a
  Kubernetes `seccompProfile: RuntimeDefault` applies one: its rules for this architecture and
  for a process with no capabilities, with their argument conditions and errno actions.

A call outside the filter kills the whole process, even where the unit's
`SystemCallErrorNumber=` or the profile's `defaultAction` would have it fail with an errno: a
call the manager would refuse shows as a dead process, not as an error the program may have
swallowed. Calls a profile itself answers with an errno keep that errno. The filter is loaded
through libseccomp, as systemd and runc do, by this file run as a program just before it execs
the command (`wrap`), or by `harness.pod` inside its sandbox.

    python3 seccomp.py FILTER_FILE -- COMMAND...
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# libseccomp's actions and argument comparisons (seccomp.h).
ACT_KILL_PROCESS = 0x80000000
ACT_ALLOW = 0x7FFF0000
ACT_ERRNO = 0x00050000
COMPARISONS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
               "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# The OCI profiles' names for this machine's architecture.
OCI_ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


class ArgCmp(ctypes.Structure):
    """libseccomp's `struct scmp_arg_cmp`."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@dataclass(frozen=True)
class Rule:
    """One call the filter lets through: allowed, or answered with an errno; only when every
    argument condition `(index, comparison, value, second value)` holds, when it has any."""

    name: str
    errno: int | None = None
    args: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True)
class Filter:
    """The calls a unit or a profile lets through; any other kills the process."""

    rules: tuple[Rule, ...]

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps([[r.name, r.errno, r.args] for r in self.rules]))
        return path

    @staticmethod
    def read(path: Path) -> Filter:
        return Filter(tuple(Rule(name, errno, tuple(tuple(a) for a in args))
                            for name, errno, args in json.loads(path.read_text())))

    def wrap(self, workdir: Path):
        """A `start_tailmeter` wrap: the command, run under this filter."""
        path = self.save(workdir / "syscall-filter.json")
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


def from_unit(unit: str) -> Filter:
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
    return Filter(tuple(Rule(name) for name in sorted(allowed)))


def from_oci_profile(profile: dict) -> Filter:
    """The rules of an OCI seccomp profile that apply to a process on this machine's
    architecture holding no capabilities (a container whose `capabilities.drop` is ALL)."""
    arch = OCI_ARCHES[platform.machine()]
    rules = []
    for entry in profile["syscalls"]:
        includes, excludes = entry.get("includes") or {}, entry.get("excludes") or {}
        if includes.get("caps") or arch in excludes.get("arches", []):
            continue  # for holders of a capability, or not for this architecture
        if includes.get("arches") and arch not in includes["arches"]:
            continue
        if includes.get("minKernel") and _kernel() < _version(includes["minKernel"]):
            continue
        if entry["action"] == "SCMP_ACT_ALLOW":
            errno = None
        elif entry["action"] == "SCMP_ACT_ERRNO":
            errno = entry.get("errnoRet", profile.get("defaultErrnoRet", 1))
        else:
            raise AssertionError(f"an action this harness does not know: {entry['action']}")
        args = tuple((a["index"], COMPARISONS[a["op"]], a["value"], a.get("valueTwo", 0))
                     for a in entry.get("args") or [])
        rules += [Rule(name, errno, args) for name in entry["names"]]
    return Filter(tuple(rules))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split(".")[:2])


def _kernel() -> tuple[int, ...]:
    return _version(platform.release())


def library() -> ctypes.CDLL:
    """libseccomp, with the signatures `load` uses."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp"), use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


def load(syscall_filter: Filter, lib: ctypes.CDLL | None = None) -> None:
    """Loads the filter on this process (inherited across exec); calls libseccomp does not know
    on this machine are left out, as systemd and runc leave them out."""
    lib = lib or library()
    ctx = lib.seccomp_init(ACT_KILL_PROCESS)
    assert ctx, "seccomp_init failed"
    for rule in syscall_filter.rules:
        number = lib.seccomp_syscall_resolve_name(rule.name.encode())
        if number == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp
            continue
        action = ACT_ALLOW if rule.errno is None else ACT_ERRNO | rule.errno
        conditions = (ArgCmp * max(len(rule.args), 1))(*(ArgCmp(*arg) for arg in rule.args))
        status = lib.seccomp_rule_add_array(ctx, action, number, len(rule.args), conditions)
        assert status == 0, f"seccomp_rule_add({rule}): {os.strerror(-status)}"
    status = lib.seccomp_load(ctx)
    assert status == 0, f"seccomp_load: {os.strerror(-status)}"


def main(argv: list[str]) -> None:
    assert argv[2] == "--", argv
    load(Filter.read(Path(argv[1])))
    os.execv(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv)
