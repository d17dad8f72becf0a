"""The report states the profile and the non-default settings its items ran with (issue 19)."""

from __future__ import annotations

from siptwin.report.render import run_settings
from siptwin.settings import build_fidelity


def _result(profile: str = "seed", **overrides: object) -> dict:
    return {"fidelity": build_fidelity(profile, overrides).as_record()}


def test_run_settings_counts_profiles_and_values_off_their_profile_default() -> None:
    summary = run_settings([_result(), _result(x_header_total_cap=1024),
                            _result("observed"), _result("observed", acl_miss="drop")])
    assert summary["profiles"] == {"seed": 2, "observed": 2}
    # acl_miss=reject is the observed profile's own default: not a change.
    assert summary["changed"] == {"x_header_total_cap": {"1024": 1}, "acl_miss": {'"drop"': 1}}
