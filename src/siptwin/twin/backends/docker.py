"""The docker backend: one container per region on a user-defined network (docker SDK).

No registry is needed: the image is built locally - a Debian root file system made by
debootstrap, a virtual environment with siptwin's wheel and its dependencies (wheels built
on this machine), imported with ``docker import``. The engine is the project's own
``dockerd`` (:class:`DockerEngine`): data in a temporary folder, no default bridge, no
iptables rules, addresses only from 198.18.0.0/15.

Each region container runs ``siptwin.twin.region_process`` on its fixed address in the network,
with network aliases for every host name of every region's domains it answers (``*.sip.…``
names are added as the domains are unknown in advance: the aliases are the region labels).
The state directory is bind-mounted at the same path, so the control plane (on the host) and
the containers share the SQLite store and the side-channel sockets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from ..config import TwinConfig
from .netns import POOL, CallerNetwork, NetnsError, place_regions
from .process import ProcessTwin, RegionProcess

IMAGE = "siptwin:local"
VENV = "/opt/siptwin"
ROOTFS_PACKAGES = "python3,python3-venv,ca-certificates"


class DockerError(RuntimeError):
    pass


def image_cache() -> Path:
    """Where the debootstrapped root file system is kept between runs."""
    return Path(os.environ.get("SIPTWIN_DOCKER_CACHE", Path.home() / ".cache" / "siptwin" / "docker"))


class DockerEngine:
    """A dockerd of our own, on a Unix socket, that leaves nothing behind when stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 30.0) -> None:
        if shutil.which("dockerd") is None:
            raise DockerError("dockerd is not installed (Debian package docker.io)")
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "dockerd.log").open("wb")
        self._process = subprocess.Popen(
            ["dockerd", "--data-root", str(self.root / "data"), "--exec-root",
             str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
             "-H", self.url, "--bridge", "none", "--iptables=false", "--ip-forward=false",
             "--default-address-pool", "base=198.18.64.0/18,size=24"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DockerError("dockerd exited:\n" + (self.root / "dockerd.log").read_text()[-2000:])
            try:
                if self.socket.exists() and self.client().ping():
                    return
            except Exception:  # the socket exists before dockerd answers on it
                pass
            time.sleep(0.2)
        self.stop()
        raise DockerError("dockerd did not start in time")

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.url, timeout=60)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None
        # dockerd mounts its data root on itself; stopped while still starting up it can
        # leave that mount behind, and the state directory could then never be removed.
        for mount_point in sorted(_mounts_under(self.root), reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def build_image(engine: DockerEngine, cache: Path, project: Path) -> str:
    """Build ``siptwin:local`` without a registry; the root file system is cached."""
    client = engine.client()
    rootfs = cache / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        if shutil.which("debootstrap") is None:
            raise DockerError("debootstrap is not installed (Debian package debootstrap)")
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.mkdir(parents=True)
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={ROOTFS_PACKAGES}",
                        "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                       check=True, capture_output=True)
    wheels = rootfs / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    # Wheels are built here, where pip reaches the index; the image installs them offline.
    # scripts/bootstrap's wheelhouse holds every dependency: no index needed (nor reachable
    # from a network namespace).
    wheelhouse = Path(os.environ.get("SIPTWIN_WHEELS") or Path.home() / ".cache/siptwin/wheels")
    offline = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse.is_dir() else []
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels),
                            *offline, str(project)], capture_output=True, text=True)
    if built.returncode != 0:
        errors = [line for line in built.stderr.splitlines() if not line.startswith("WARNING")]
        raise DockerError("pip could not build the wheels for the image:\n"
                          + "\n".join(errors[-20:]))
    shutil.rmtree(rootfs / VENV.lstrip("/"), ignore_errors=True)
    subprocess.run(["chroot", str(rootfs), "python3", "-m", "venv", VENV], check=True,
                   capture_output=True)
    installed = subprocess.run(["chroot", str(rootfs), f"{VENV}/bin/pip", "install", "-q",
                                "--no-index", "--find-links", "/wheels", "siptwin"],
                               capture_output=True, text=True)
    if installed.returncode != 0:
        raise DockerError("pip could not install siptwin into the image:\n"
                          + "\n".join(installed.stderr.splitlines()[-20:]))
    shutil.rmtree(wheels)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        with archive.open("rb") as data:
            client.api.import_image_from_data(data.read(), repository="siptwin", tag="local")
    return IMAGE


class DockerTwin(CallerNetwork, ProcessTwin):
    """Control plane on the host; each region a container on a 198.18.x.0/24 network."""

    def __init__(self, config: TwinConfig, engine: DockerEngine, image: str = IMAGE) -> None:
        self.engine = engine
        self.image = image
        self.tag = os.urandom(2).hex()
        placed, self.regions_net, self.callers_net, self.gateway = place_regions(config)
        super().__init__(placed)
        self.network_name = f"siptwin-{self.tag}"
        self._network: Any = None
        self._bridge = self.caller_interface = ""
        self._sources: set[str] = set()

    async def start(self) -> None:
        client = self.engine.client()
        import docker

        self._network = client.networks.create(
            self.network_name, driver="bridge",
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
                subnet=str(self.regions_net), gateway=self.gateway)]),
            options={"com.docker.network.bridge.name": f"st{self.tag}dk"})
        self._bridge = self.caller_interface = f"st{self.tag}dk"
        # Callers live in the other /24: the containers reach it through their default route,
        # the gateway, which is this host.
        await super().start()

    async def start_region(self, region_id: str) -> None:
        import asyncio
        import json

        region = self.catalogue[region_id]
        state = str(self.config.state_dir.resolve())
        client = self.engine.client()
        name = f"{self.network_name}-{region.id}"
        for stale in client.containers.list(all=True, filters={"name": name}):
            stale.remove(force=True)
        aliases = [f"sip.{label}.twilio.com" for label in region.labels]
        container = client.containers.create(
            self.image,
            [f"{VENV}/bin/python", "-m", "siptwin.twin.region_process", "--state", state,
             "--region", region.id, "--address", region.address,
             "--profile", self.fidelity.profile],
            name=name, detach=True, volumes={state: {"bind": state, "mode": "rw"}},
            network=self.network_name,
        )
        # Fixed address and aliases: reconnect with the endpoint configuration.
        self._network.disconnect(container)
        self._network.connect(container, ipv4_address=region.address, aliases=aliases)
        container.start()
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and ready is None:
            for line in container.logs().decode(errors="replace").splitlines():
                if "region ready" in line:
                    ready = json.loads(line)
            container.reload()
            if container.status == "exited":
                raise DockerError(f"region {region.id} exited:\n" + container.logs().decode()[-2000:])
            await asyncio.sleep(0.1)
        if ready is None:
            raise DockerError(f"region {region.id} not ready in time")
        proc = RegionProcess(region, _ContainerHandle(container),
                             control_socket=ready["control_socket"])
        proc.addresses = {t: ((region.address, p) if p else None) for t, p in ready["ports"].items()}
        self.regions[region.id] = proc
        if self.fidelity.overrides:
            self._push_fidelity(proc)

    async def stop_region(self, region_id: str) -> None:
        self.regions[region_id].process.kill()

    async def stop(self) -> None:
        for proc in list(self.regions.values()):
            assert isinstance(proc.process, _ContainerHandle)
            proc.process.remove()
        self.regions.clear()
        await super().stop()
        if self._network is not None:
            self._network.remove()
            self._network = None


class _ContainerHandle:
    """What :class:`RegionProcess` needs of a process, for a container."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def poll(self) -> int | None:
        self.container.reload()
        return None if self.container.status == "running" else 0

    def kill(self) -> None:
        if self.poll() is None:
            self.container.kill()

    def remove(self) -> None:
        self.container.remove(force=True)

    def terminate(self) -> None:
        self.kill()

    def send_signal(self, sig: int) -> None:
        self.kill()

    def wait(self, timeout: float | None = None) -> int:
        return 0


__all__ = ["DockerEngine", "DockerTwin", "NetnsError", "POOL", "build_image"]
