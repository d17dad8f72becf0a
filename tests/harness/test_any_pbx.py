"""Any PBX in a scenario: ``device: command`` wraps a client the suite does not know."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from siptwin.harness.devices import CommandDevice, run_group
from siptwin.harness.pbx import DeviceError, Target
from siptwin.harness.scenario import ScenarioError, load_scenario
from tests.support import REPO
from tests.support.suite import run_suite

PJSUA2 = REPO / "scenarios" / "interop" / "pjsua2-scripted-uac.yaml"





def test_a_command_device_passes_and_the_same_one_with_a_wrong_password_fails_as_authentication(
        tmp_path: Path) -> None:
    code, out, records = run_suite(tmp_path, PJSUA2, scenarios_dir=PJSUA2.parent.parent)
    assert code == 0, out[-3000:]
    for region in ("us1", "ie1"):
        record = records[("interop/pjsua2-scripted-uac", region)]
        assert record["outcome"] == "passed"
        run = record["peers"][0]["pbx"]
        assert run["device"] == "command" and run["exit"] == 0
        assert "sent RFC 4733 digits 123" in run["output_tail"]  # the output is in the report

    wrong = tmp_path / "wrong" / "scenarios" / "interop" / "pjsua2-wrong-password.yaml"
    wrong.parent.mkdir(parents=True)
    text = PJSUA2.read_text()
    assert text.count("password: Harbour7Lights }") == 1
    wrong.write_text(text.replace("password: Harbour7Lights }", "password: NotTheOne1 }"))
    code, out, records = run_suite(tmp_path / "wrong", wrong, regions="us1",
                                     scenarios_dir=wrong.parent.parent)
    assert code == 1, out[-3000:]
    record = records[("interop/pjsua2-wrong-password", "us1")]
    assert record["outcome"] == "failed"
    assert record["failure_kind"] == "authentication-failed"
    assert "32202" in record["failures"][0]["message"]
    assert record["failures"][0]["actual"]["exit"] == 1


def _target() -> Target:
    return Target("127.0.0.1", 5060, "acme.sip.ie1.twilio.com", "alice", "it's secret", "udp",
                  region="ie1", tls_port=5061, dns_addr="127.0.0.1", dns_port=5300,
                  ca_file="/tmp/ca.pem")


def test_commands_see_the_twins_coordinates_and_quote_what_they_must(tmp_path: Path) -> None:
    device = CommandDevice(_target(), {
        "call": "echo {{ node_addr }}:{{ node_port }} {{ host }} {{ region }} {{ tls_port }} "
                "{{ dns_addr }}:{{ dns_port }} {{ ca_file }} {{ password | quote }} $SITE",
        "env": {"SITE": "{{ region }}-ci"}}, workdir=tmp_path)
    run = device.call()
    assert run.exit == 0
    assert run.output.strip() == ("127.0.0.1:5060 acme.sip.ie1.twilio.com ie1 5061 "
                                  "127.0.0.1:5300 /tmp/ca.pem it's secret ie1-ci")


def test_an_unknown_variable_is_a_clear_error(tmp_path: Path) -> None:
    device = CommandDevice(_target(), {"call": "echo {{ nodeaddr }}"}, workdir=tmp_path)
    with pytest.raises(DeviceError, match="'nodeaddr' is undefined.*node_addr"):
        device.call()


def test_start_waits_for_ready_and_stop_ends_its_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    # start leaves a grandchild behind (a daemon would): stop must end it too.
    device = CommandDevice(_target(), {
        "start": f"sleep 300 & echo $! > {marker}; sleep 0.3; echo listening on {{{{ node_port }}}}; wait",
        "ready": r"listening on \d+", "call": "true", "timeout": 10}, workdir=tmp_path)
    began = time.monotonic()
    device.start()
    assert time.monotonic() - began >= 0.25
    child = int(marker.read_text())
    assert _alive(child)
    assert device.call().exit == 0
    device.stop()
    assert not _alive(child)


def test_a_start_that_never_gets_ready_or_dies_is_reported_with_its_output(tmp_path: Path) -> None:
    slow = CommandDevice(_target(), {"start": "echo warming up; sleep 300", "ready": "ready",
                                     "call": "true", "timeout": 0.5}, workdir=tmp_path / "a")
    with pytest.raises(DeviceError, match="did not print 'ready' within 0.5 s:\nwarming up"):
        slow.start()
    dead = CommandDevice(_target(), {"start": "echo bad config; exit 3", "ready": "ready",
                                     "call": "true"}, workdir=tmp_path / "b")
    with pytest.raises(DeviceError, match=r"(?s)start exited \(3\).*bad config"):
        dead.start()


def test_a_call_that_hangs_is_killed_at_its_timeout() -> None:
    began = time.monotonic()
    code, out = run_group("echo dialling; sleep 300", dict(os.environ), 0.5)
    assert code == -1 and "dialling" in out and "killed after 0.5 s" in out
    assert time.monotonic() - began < 10


@pytest.mark.parametrize(("when", "message"), [
    ("pbx: { device: command, start: 'x' }", "'call' is a required property"),
    ("pbx: { device: container, call: 'x' }", "'image' is a required property"),
    ("pbx: { device: kamailio, call: 'x' }", "call: not a setting of device 'kamailio'"),
    ("pbx: { device: command, call: 'x', image: debian }", "image: not a setting of device 'command'"),
])
def test_a_device_step_with_a_mistake_names_the_file_and_line(tmp_path: Path, when: str,
                                                              message: str) -> None:
    path = tmp_path / "scenarios" / "interop" / "mine.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"title: t\npins: [x]\nwhen:\n  {when}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, tmp_path / "scenarios")
    assert f"{path}:4: when/pbx" in str(err.value) and message in str(err.value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # collected between the two looks (ESRCH
        return False  # when it goes while its stat is being read)
    return state != "Z"



def test_stop_returns_only_when_no_member_of_the_group_still_runs(tmp_path: Path) -> None:
    # Forty grandchildren that shrug off SIGTERM: only SIGKILL ends them, and a signal is
    # delivered asynchronously, so stop must look again before it returns.
    marker = tmp_path / "children"
    device = CommandDevice(_target(), {
        "start": "for i in $(seq 40); do sh -c 'trap \"\" TERM; sleep 300' & "
                 f"echo $! >> {marker}; done; echo ready; wait",
        "ready": "ready", "call": "true", "timeout": 10}, workdir=tmp_path)
    device.start()
    children = [int(line) for line in marker.read_text().split()]
    assert len(children) == 40 and all(_alive(pid) for pid in children)
    device.stop()
    assert [pid for pid in children if _alive(pid)] == []
