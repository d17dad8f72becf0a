"""Scenario files: schema errors name the file and line; templates render per region."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from siptwin.harness.scenario import ScenarioError, discover, load_scenario, parse_yaml, render
from tests.support import REPO


def write(tmp_path: Path, relative: str, text: str) -> Path:
    path = tmp_path / "scenarios" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_shipped_scenario_loads() -> None:
    root = REPO / "scenarios"
    paths = discover(root)
    assert paths, "no scenarios shipped"
    ids = [load_scenario(p, root).id for p in paths]
    assert len(ids) == len(set(ids))


def _lines(node: yaml.Node) -> list[int]:
    lines = [node.start_mark.line]
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines += _lines(key) + _lines(value)
    elif isinstance(node, yaml.SequenceNode):
        for value in node.value:
            lines += _lines(value)
    return lines


def test_fast_parse_matches_the_pure_python_parser() -> None:
    """parse_yaml uses libyaml when it can; the data and every node's line (error messages
    point at them) must be what the pure-Python parser gives."""
    for path in discover(REPO / "scenarios"):
        text = path.read_text(encoding="utf-8")
        node, data = parse_yaml(path, text, ScenarioError)
        assert data == yaml.safe_load(text), path
        assert _lines(node) == _lines(yaml.compose(text)), path


def test_unknown_key_is_reported_with_file_and_line(tmp_path) -> None:
    path = write(tmp_path, "acl/typo.yaml", (
        "title: typo\n"
        "pins: spec\n"
        "when:\n"
        "  invite:\n"
        "    sourse: 127.0.0.9\n"
    ))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, tmp_path / "scenarios")
    message = str(caught.value)
    assert f"{path}:5" in message or f"{path}:4" in message
    assert "sourse" in message


def test_wrong_type_points_at_its_line(tmp_path) -> None:
    path = write(tmp_path, "x/bad.yaml", (
        "title: bad\n"
        "pins: spec\n"
        "when:\n"
        "  invite: {}\n"
        "then:\n"
        "  responses: [100, \"two hundred\"]\n"
    ))
    with pytest.raises(ScenarioError, match=rf"{path}:6: then/responses/1"):
        load_scenario(path, tmp_path / "scenarios")


def test_broken_yaml_names_the_line(tmp_path) -> None:
    path = write(tmp_path, "x/broken.yaml", "title: x\npins: [a\nwhen: {}\n")
    with pytest.raises(ScenarioError, match=rf"{path}:\d+: not valid YAML"):
        load_scenario(path, tmp_path / "scenarios")


def test_feature_and_id_come_from_the_path(tmp_path) -> None:
    path = write(tmp_path, "acl/ip-not-listed.yaml",
                 "title: t\npins: p\ntags: [security]\nregions: [ie1]\nwhen:\n  invite: {}\n")
    scenario = load_scenario(path, tmp_path / "scenarios")
    assert scenario.id == "acl/ip-not-listed" and scenario.feature == "acl"
    assert scenario.tags == ["acl", "security"]
    assert scenario.applies_to("ie1") and not scenario.applies_to("us1")


def test_templates_render_nested_values_and_fail_on_unknown_names() -> None:
    context = {"region": "ie1", "domain": "acme-1"}
    assert render({"to": ["sip:1@{{ domain }}.sip.{{ region }}.twilio.com"]}, context) == {
        "to": ["sip:1@acme-1.sip.ie1.twilio.com"]}
    with pytest.raises(ScenarioError, match="undefined"):
        render("{{ nope }}", context)


def test_call_expectations_match_nested_records_key_by_key() -> None:
    from siptwin.harness.engine import _mismatches

    media = {"digits_received": "123", "packets_received": 400,
             "srtp": {"suite": "AES_CM_128_HMAC_SHA1_80", "rejected": 0, "replayed": 2}}
    assert _mismatches("media", {"srtp": {"suite": "AES_CM_128_*", "rejected": 0},
                                 "digits_received": "123"}, media) == []
    assert _mismatches("media", {"srtp": {"rejected": 1}, "digits_received": "12"}, media) == [
        ("media.srtp.rejected", 1, 0), ("media.digits_received", "12", "123")]
    assert _mismatches("media", {"srtp": {"suite": "x"}}, {}) == [("media.srtp", {"suite": "x"},
                                                                    None)]
    assert _mismatches("status", "completed", "completed") == []
