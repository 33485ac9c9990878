"""`chelian sim` options of the agent-based simulator: --map and --scenario, refused cleanly."""

from __future__ import annotations

from typer.testing import CliRunner

from chelian.cli.main import app


def run(tmp_path, *args: str):
    return CliRunner().invoke(app, ["sim", "--owner", "x@example.com", "--data-dir", str(tmp_path), *args])


def test_help_names_the_new_options():
    out = CliRunner().invoke(app, ["sim", "--help"]).output
    assert "--map" in out and "--scenario" in out and "crash" in out


def test_scenario_help_keeps_its_optional_part_and_cars_go_past_1000():
    """Rich markup once swallowed `[@SECONDS]`; the fleet cap is a sanity bound, not 1 000."""
    out = CliRunner().invoke(app, ["sim", "--help"], env={"COLUMNS": "200"}).output
    assert "NAME:CAR[@SECONDS]" in out
    assert "1<=x<=20000" in out


def test_too_many_cars_is_a_clear_error(tmp_path):
    result = run(tmp_path, "--cars", "20001")
    assert result.exit_code != 0 and "20000" in result.output and "Traceback" not in result.output


def test_bad_scenarios_and_maps_are_one_line_errors(tmp_path):
    cases = {
        ("--scenario", "explode:1"): "unknown scenario 'explode'",
        ("--scenario", "crash"): "NAME:CAR[@SECONDS]",
        ("--cars", "2", "--scenario", "crash:2"): "only cars 0 to 1",
        ("--map", str(tmp_path / "nowhere.osm.pbf")): "cannot use --map",
    }
    for args, message in cases.items():
        result = run(tmp_path, *args)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
