"""A DNS server on loopback that answers as the test scripts it, and a way to make tailmeter use it.

The system resolver (glibc's `getaddrinfo`) asks the name servers in /etc/resolv.conf on port
53; there is no per-process setting. `run_with_resolver` therefore starts a process in a mount
namespace of its own (`unshare --mount`, root only) where /etc/resolv.conf is a bind mount of a
file naming this server: tailmeter's lookups go through the real glibc resolver, only the name
server is the test's.

Names are scripted by their first label: a `Script` gives the A records for it and how long the
answer takes, or None for a label that is never answered (a name server that is down, or
dropped by a firewall); a label with no script is NXDOMAIN. AAAA questions get no records. Every
question is counted per (name, type).
"""

from __future__ import annotations

import collections
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# A loopback address no other test listens on; DNS is always port 53.
ADDRESS = "127.0.0.77"
TYPE_A, TYPE_AAAA = 1, 28
TYPE_NAMES = {TYPE_A: "A", TYPE_AAAA: "AAAA"}
NOERROR, NXDOMAIN = 0, 3


@dataclass
class Script:
    """The answer for one label: its IPv4 addresses (in this order), after `delay_s` seconds."""

    ipv4s: list[str]
    delay_s: float = 0.0


class ScriptedResolver:
    def __init__(self, script: dict[str, Script | None]):
        self.script = script
        self.questions: collections.Counter[tuple[str, str]] = collections.Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ADDRESS, 53))
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="scripted-resolver", daemon=True)
        self._thread.start()

    def asked(self, name: str, qtype: str = "A") -> int:
        """How many times `name` was asked for records of `qtype`."""
        with self._lock:
            return self.questions[(name, qtype)]

    def _serve(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(512)
            except OSError:
                return  # closed
            parsed = parse_question(query)
            if parsed is None:
                continue
            name, qtype, question_end = parsed
            with self._lock:
                self.questions[(name, TYPE_NAMES.get(qtype, str(qtype)))] += 1
            label = name.split(".", 1)[0]
            if label not in self.script:
                self._send(answer(query, question_end, NXDOMAIN, []), client)
                continue
            script = self.script[label]
            if script is None:
                continue
            records = [socket.inet_aton(ip) for ip in script.ipv4s] if qtype == TYPE_A else []
            reply = answer(query, question_end, NOERROR, records)
            threading.Timer(script.delay_s, self._send, (reply, client)).start()

    def _send(self, reply: bytes, client: tuple[str, int]) -> None:
        try:
            self.sock.sendto(reply, client)
        except OSError:
            pass  # closed meanwhile

    def close(self) -> None:
        self.sock.close()


def parse_question(query: bytes) -> tuple[str, int, int] | None:
    """The first question's name, type and where the question section ends; None if malformed."""
    at, labels = 12, []
    while at < len(query) and query[at] != 0:
        length = query[at]
        labels.append(query[at + 1:at + 1 + length].decode("ascii", "replace").lower())
        at += 1 + length
    if at + 5 > len(query):
        return None
    (qtype,) = struct.unpack("!H", query[at + 1:at + 3])
    return ".".join(labels), qtype, at + 5


def answer(query: bytes, question_end: int, rcode: int, ipv4s: list[bytes]) -> bytes:
    """A response to `query`: its id and question, recursion available, `ipv4s` as A records."""
    (qid, qflags) = struct.unpack("!HH", query[:4])
    flags = 0x8000 | (qflags & 0x0100) | 0x0080 | rcode  # QR, RD as asked, RA
    header = struct.pack("!HHHHHH", qid, flags, 1, len(ipv4s), 0, 0)
    records = b"".join(struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 30, 4) + ip for ip in ipv4s)
    return header + query[12:question_end] + records


def namespaces_allowed() -> bool:
    """Whether this process may make a mount namespace and bind-mount in it."""
    probe = subprocess.run(["unshare", "--mount", "mount", "--bind", "/etc/hostname", "/etc/hostname"],
                           capture_output=True, timeout=10)
    return probe.returncode == 0


@contextmanager
def scripted_resolver(script: dict[str, Script | None]) -> Iterator[ScriptedResolver]:
    resolver = ScriptedResolver(script)
    try:
        yield resolver
    finally:
        resolver.close()


def run_with_resolver(workdir: Path, argv: list[str]) -> list[str]:
    """`argv` wrapped to run with /etc/resolv.conf naming only the scripted resolver."""
    conf = workdir / "resolv.conf"
    conf.write_text(f"nameserver {ADDRESS}\n")
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(conf), *argv]
