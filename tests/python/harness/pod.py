"""The tailmeter container of the shipped Kubernetes Deployment, run without Kubernetes.

`kubectl` is not where the tests run, so what the kubelet and the container runtime would do
for the container is done here from the manifest itself (`Container.from_manifests`), by this
file run as a program (as root) that then execs the container's command:
- a mount namespace whose root is a tmpfs holding the image: the host's `/usr` (read-only), its
  `/etc` copied, the binary at the image's path, the directories the Dockerfile makes;
- every `volumeMount` at its `mountPath` (a host directory per volume; read-only where the
  manifest says so), then the root remounted read-only (`readOnlyRootFilesystem`);
- the image's `WORKDIR`, the manifest's `runAsUser`/`runAsGroup` with no supplementary groups,
  every capability dropped from the bounding set (`capabilities.drop: ALL`), no new privileges
  (`allowPrivilegeEscalation: false`), and last the seccomp filter (`RuntimeDefault`, from a
  profile file) before the exec;
- the environment a runtime gives: `PATH`, `HOME=/`, the manifest's `env`, and the secret
  values the test gives for `envFrom`.
The process keeps its pid through every step, so the test signals tailmeter itself.

    python3 pod.py SPEC_FILE
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# mount(2) and unshare(2) flags; prctl(2) options (linux headers).
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
CLONE_NEWNS = 0x00020000
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
CAP_LAST_CAP_FILE = Path("/proc/sys/kernel/cap_last_cap")
RUNTIME_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Volume:
    """A volume mounted into the container: `source` on the host, at `path` inside."""

    source: str
    path: str
    read_only: bool


@dataclass
class Container:
    """What the runtime needs to run the container: image paths, volumes, user, environment."""

    binary: str  # on the host
    binary_path: str  # in the image
    argv: list[str]
    workdir: str
    image_dirs: list[tuple[str, int, int]]  # made by the Dockerfile: path, owner, group
    volumes: list[Volume]
    uid: int
    gid: int
    read_only_root: bool
    no_new_privileges: bool
    env: dict[str, str]
    seccomp_rules: str  # a saved harness.seccomp.Filter, or "" for none
    root: str  # an empty host directory the root is mounted on

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    def wrap(self, spec: Path):
        """A `start_tailmeter` wrap: the container's own command, whatever tailmeter's would be."""
        here = Path(__file__).resolve()
        return lambda _argv: [sys.executable, str(here), str(self.save(spec))]


def from_manifests(deployment: dict, dockerfile: str, name: str, binary: Path,
                   volume_sources: dict[str, Path], secret_env: dict[str, str], seccomp_rules: Path | None,
                   root: Path) -> Container:
    """The container `name` of `deployment`, from the image the Dockerfile's last stage builds;
    each volume's contents from `volume_sources` (by volume name)."""
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == name)
    image = _last_stage(dockerfile)
    security = container.get("securityContext", {})
    assert security.get("capabilities", {}).get("drop") == ["ALL"], security
    profile = security.get("seccompProfile", {}).get("type")
    assert profile in (None, "RuntimeDefault"), profile
    env = {"PATH": RUNTIME_PATH, "HOME": "/", "HOSTNAME": deployment["metadata"]["name"]}
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    if container.get("envFrom"):
        env.update(secret_env)
    command = container.get("command") or image["ENTRYPOINT"]
    return Container(
        binary=str(binary),
        binary_path=image["COPY"],
        argv=command + container.get("args", image["CMD"]),
        workdir=container.get("workingDir", image["WORKDIR"]),
        image_dirs=image["dirs"],
        volumes=[Volume(str(volume_sources[m["name"]]), m["mountPath"], m.get("readOnly", False))
                 for m in container.get("volumeMounts", [])],
        uid=security["runAsUser"],
        gid=security["runAsGroup"],
        read_only_root=security.get("readOnlyRootFilesystem", False),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        env=env,
        seccomp_rules=str(seccomp_rules) if profile and seccomp_rules else "",
        root=str(root),
    )


def _last_stage(dockerfile: str) -> dict:
    """The instructions of the Dockerfile's last stage this harness needs: the binary's path,
    the directories made (`mkdir -p`, owned as a `chown U:G` of them says), the entrypoint,
    command and working directory (made, owned by root, as Docker makes it)."""
    stage = dockerfile.split("\nFROM ")[-1]
    found: dict = {"dirs": []}
    for line in stage.replace("\\\n", " ").splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("ENTRYPOINT", "CMD"):
            found[word] = json.loads(rest)
        elif word == "WORKDIR":
            found[word] = rest.strip()
            found["dirs"].append((found[word], 0, 0))
        elif word == "COPY":
            found[word] = rest.split()[-1]
        elif word == "RUN":
            for command in rest.split("&&"):
                made = command.split()
                if made[:2] == ["mkdir", "-p"]:
                    found["dirs"] += [(d, 0, 0) for d in made[2:]]
                elif made[:1] == ["chown"]:
                    owner, group = (int(n) for n in made[1].split(":"))
                    found["dirs"] = [(d, owner, group) if d in made[2:] else (d, u, g) for d, u, g in found["dirs"]]
    return found


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _check(status: int, what: str) -> None:
    if status != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class _Mounts:
    def __init__(self, libc: ctypes.CDLL, root: Path):
        self.libc, self.root = libc, root

    def mount(self, source: str | None, target: Path, fstype: str | None, flags: int, data: str = "") -> None:
        _check(self.libc.mount(source and source.encode(), str(target).encode(), fstype and fstype.encode(),
                               flags, data.encode() or None), f"mount {source} on {target}")

    def inside(self, path: str) -> Path:
        """`path` in the container, as a host path under the root (symlinks in the image
        followed: /var/run is /run)."""
        here = self.root
        for part in Path(path).relative_to("/").parts:
            here = here / part
            if here.is_symlink():
                link = os.readlink(here)
                here = self.root / link.lstrip("/") if link.startswith("/") else here.parent / link
        return here

    def bind(self, source: str, path: str, read_only: bool) -> None:
        target = self.inside(path)
        if Path(source).is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        self.mount(source, target, None, MS_BIND | MS_REC)
        if read_only:
            self.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _build_root(spec: Container, mounts: _Mounts) -> None:
    """The image on a tmpfs, the volumes on it, then (if asked) the root read-only."""
    root = mounts.root
    mounts.mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    mounts.bind("/usr", "/usr", read_only=True)
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):  # merged /usr: symlinks
        host = Path("/") / top
        if host.is_symlink():
            (root / top).symlink_to(os.readlink(host))
    shutil.copytree("/etc", root / "etc", symlinks=True, ignore_dangling_symlinks=True)
    for d in ("tmp", "run", "var", "proc", "dev"):
        (root / d).mkdir(exist_ok=True)
    (root / "var" / "run").symlink_to("/run")
    (root / "tmp").chmod(0o1777)
    mounts.mount("/proc", root / "proc", None, MS_BIND | MS_REC)
    mounts.mount("/dev", root / "dev", None, MS_BIND | MS_REC)
    mounts.mount("tmpfs", mounts.inside("/usr/local"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    mounts.bind(spec.binary, spec.binary_path, read_only=True)
    for d, owner, group in spec.image_dirs:
        mounts.inside(d).mkdir(parents=True, exist_ok=True)
        os.chown(mounts.inside(d), owner, group)
    for volume in spec.volumes:
        mounts.bind(volume.source, volume.path, volume.read_only)
    if spec.read_only_root:
        for tmpfs in (mounts.inside("/usr/local"), root):
            mounts.mount(None, tmpfs, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def main(argv: list[str]) -> None:
    import seccomp  # this file's neighbour: this file runs as a program

    raw = json.loads(Path(argv[1]).read_text())
    spec = Container(**{**raw, "volumes": [Volume(**v) for v in raw["volumes"]],
                        "image_dirs": [tuple(d) for d in raw["image_dirs"]]})
    libc = _libc()
    # Read while the host is still the root.
    syscall_filter = seccomp.Filter.read(Path(spec.seccomp_rules)) if spec.seccomp_rules else None
    seccomp_lib = seccomp.library() if syscall_filter else None
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    mounts = _Mounts(libc, Path(spec.root))
    mounts.mount(None, Path("/"), None, MS_REC | MS_PRIVATE)
    _build_root(spec, mounts)
    os.chroot(spec.root)
    os.chdir(spec.workdir)
    for cap in range(int(CAP_LAST_CAP_FILE.read_text()) + 1):  # capabilities.drop: ALL
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    os.setgroups([])
    os.setresgid(spec.gid, spec.gid, spec.gid)
    os.setresuid(spec.uid, spec.uid, spec.uid)  # from root to another user: every capability goes
    if spec.no_new_privileges:
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if syscall_filter:
        seccomp.load(syscall_filter, seccomp_lib)
    os.execve(spec.argv[0], spec.argv, spec.env)


if __name__ == "__main__":
    main(sys.argv)
