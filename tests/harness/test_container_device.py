"""``device: container``: the project's own dockerd (twin/backends/docker.py), an image made
here without a registry, a container on the host network placing the scenario's call."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from siptwin.harness.devices import ContainerDevice
from siptwin.harness.pbx import Target
from siptwin.twin.backends.docker import DockerEngine
from tests.support import REPO
from tests.support.suite import run_suite

SCENARIO = REPO / "harness" / "docker" / "scenarios" / "pbx" / "container-call.yaml"
IMAGE = "siptwin-hostroot:local"


def _host_root_image(client) -> None:
    """An empty root with merged-/usr links: the container mounts the host's /usr and /etc."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name in ("usr", "etc", "tmp", "proc", "sys", "dev", "harness"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for link in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(info)
    repository, tag = IMAGE.split(":")
    client.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag)





def test_a_container_device_places_the_call_and_a_failing_call_is_named(tmp_path) -> None:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed: run scripts/bootstrap")
    # containerd's socket path must fit in a sockaddr_un: a short root, not under tmp_path.
    root = Path(tempfile.mkdtemp(prefix="st-dk-", dir="/tmp"))
    engine = DockerEngine(root)
    engine.start()
    try:
        client = engine.client()
        _host_root_image(client)
        code, out, records = run_suite(
            tmp_path / "good", SCENARIO, scenarios_dir=SCENARIO.parent.parent,
            env_extra={"DOCKER_HOST": engine.url})
        assert code == 0, out[-3000:]
        for region in ("us1", "ie1"):
            record = records[("pbx/container-call", region)]
            assert record["outcome"] == "passed"
            run = record["peers"][0]["pbx"]
            assert run["device"] == "container" and run["exit"] == 0
            assert "container up" in run["start_output"]
        # Every container the steps started is gone.
        assert client.containers.list(all=True, filters={"label": "siptwin.device"}) == []

        # The same call to an address outside the domain's ACL: the twin stays silent (seed
        # profile), SIPp gives up, and the failure says no INVITE was accepted.
        bad = tmp_path / "bad" / "scenarios" / "pbx" / "container-acl.yaml"
        bad.parent.mkdir(parents=True)
        bad.write_text(SCENARIO.read_text().replace('acl: ["127.0.0.1"]', 'acl: ["127.0.0.99"]')
                       .replace("-recv_timeout 10s", "-recv_timeout 2s"))
        code, out, records = run_suite(
            tmp_path / "bad", bad, scenarios_dir=bad.parent.parent,
            env_extra={"DOCKER_HOST": engine.url})
        assert code == 1, out[-3000:]
        record = records[("pbx/container-acl", "us1")]
        assert record["failure_kind"] == "source-not-allowed", record["failures"][:1]
        assert client.containers.list(all=True, filters={"label": "siptwin.device"}) == []

        # A call that hangs is ended at the step's timeout, and the container still removed.
        device = ContainerDevice(
            Target("127.0.0.1", 5060, "acme.sip.us1.twilio.com", region="us1"),
            {"image": IMAGE, "command": "echo up; exec sleep 600", "ready": "up",
             "call": "echo dialling; sleep 300", "timeout": 2,
             "volumes": {"/usr": "/usr", "/etc": "/etc"}}, client)
        device.start()
        try:
            began = time.monotonic()
            run = device.call()
            assert run.exit == -1 and "killed after 2 s" in run.output
            assert time.monotonic() - began < 20
        finally:
            device.stop()
        assert client.containers.list(all=True, filters={"label": "siptwin.device"}) == []
    finally:
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)
