"""The command line: every command has help with an example; errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pipeline.cli import main


def all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        path = prefix + (name,)
        yield path, cmd
        if hasattr(cmd, "commands"):
            yield from all_commands(cmd, path)


@pytest.mark.parametrize("path", [p for p, _ in all_commands(main)], ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    cmd = dict(all_commands(main))[path]
    assert cmd.help and "Example:" in cmd.help, f"weipian {' '.join(path)} needs a docstring with an Example:"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0


def test_missing_county_toml_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "nope.toml: file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_db_status_of_an_empty_folder(tmp_path):
    env = {"WEIPIAN_DB_DIR": str(tmp_path / "db")}
    result = CliRunner().invoke(main, ["db", "status"], env=env)
    assert result.exit_code == 0
    assert "initialized: False" in result.output
    assert "running: False" in result.output


def test_bad_batch_names_the_batches(run_cli, tmp_path):
    toml = tmp_path / "county.toml"
    import geopandas as gpd
    from shapely.geometry import box

    gpd.GeoDataFrame({"XZQDM": ["1"], "XZQMC": ["甲"], "DLBM": ["0103"]}, geometry=[box(0, 0, 1, 1)],
                     crs="EPSG:4546").to_file(tmp_path / "x.gpkg")
    gpd.GeoDataFrame({"JCBH": ["1"], "HSX": ["20220101"], "BHLX": ["建设用地"]}, geometry=[box(0, 0, 1, 1)],
                     crs="EPSG:4546").to_file(tmp_path / "c.gpkg")
    toml.write_text("""
[county]
code = "140824"
name = "测试县"
crs = "EPSG:4546"
[[layers]]
kind = "township"
path = "x.gpkg"
[[layers]]
kind = "landuse"
path = "x.gpkg"
[[layers]]
kind = "change"
path = "c.gpkg"
batch = "2022"
""", encoding="utf-8")
    proc = run_cli("run", str(toml), "--batch", "2019", "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "migration" not in proc.stderr  # refused before touching the database
    assert "--batch 2019: no change layer of this county has that batch (batches: 2022)" in proc.stderr
