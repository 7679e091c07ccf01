"""The sample county end to end: generated, run through the CLI, checked in the database.

The generator (data/generate_sample.py) also writes expected_polygons.csv from its
own shapely model of domain.md's rules, independent of the SQL; the pipeline must
agree with it polygon by polygon. The invariants are checked in PostGIS itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
BATCHES = ["2021", "2022", "2023Q2"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory, pg_cluster, migrated_template):
    folder = tmp_path_factory.mktemp("sample")
    subprocess.run([sys.executable, str(ROOT / "data" / "generate_sample.py"), "--out", str(folder)],
                   check=True, capture_output=True)
    name = f"sample_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name, template=migrated_template)
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("PGSERVICE", None)
    out = folder / "out"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(folder / "county.toml"), "--out", str(out)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    yield folder, out, url, proc
    pg_cluster.drop_database(name)


def test_every_batch_has_its_outputs(sample):
    _, out, _, proc = sample
    for b in BATCHES:
        for f in ("polygons.csv", "township_stats.csv", "report.md", "classified.gpkg"):
            assert (out / b / f).is_file(), f"{b}/{f}"
    assert proc.stdout.split() == [str(out / b / "report.md") for b in BATCHES]


def test_pieces_add_up_to_each_polygon(sample):
    _, _, url, _ = sample
    with psycopg.connect(url) as conn:
        worst = conn.execute("""
            SELECT r.batch, r.jcbh, r.area_m2, coalesce(sum(p.area_m2), 0) AS pieces
            FROM weipian.change_result r
            LEFT JOIN weipian.change_piece p
              ON p.county_code = r.county_code AND p.batch = r.batch AND p.change_id = r.change_id
            GROUP BY r.batch, r.jcbh, r.area_m2
            ORDER BY abs(r.area_m2 - coalesce(sum(p.area_m2), 0)) DESC
            LIMIT 1""").fetchone()
        n = conn.execute("SELECT count(*) FROM weipian.change_result").fetchone()[0]
    assert n == 335
    assert abs(worst[2] - worst[3]) < 0.01, worst


def test_every_feature_read_is_accounted_for(sample):
    _, _, url, _ = sample
    with psycopg.connect(url) as conn:
        rows = conn.execute("""
            SELECT s.path, s.n_read, s.n_loaded, s.n_repaired, s.n_quarantined,
                   (SELECT count(*) FROM weipian.quarantine q WHERE q.source_id = s.id) AS q
            FROM weipian.source s""").fetchall()
        reason = conn.execute("SELECT reason FROM weipian.quarantine").fetchall()
    for path, n_read, n_loaded, n_repaired, n_quarantined, q in rows:
        assert n_read == n_loaded + n_repaired + n_quarantined, path
        assert q == n_quarantined, path
    # the sample has exactly one unusable feature: the approval with PZRQ 2022/13/45
    assert [r[0] for r in reason] == ["PZRQ '2022/13/45' 不是日期，应为 20220315、2022-03-15 或 2022/3/15 格式"]
    # and one repaired geometry: the bow-tie change polygon
    assert sum(r[3] for r in rows) == 1


def test_pipeline_agrees_with_the_generators_model(sample):
    folder, out, _, _ = sample
    dtype = {"jcbh": str, "batch": str, "xzqdm": str}
    expected = pd.read_csv(folder / "expected_polygons.csv", dtype=dtype)
    got = pd.concat([pd.read_csv(out / b / "polygons.csv", dtype=dtype) for b in BATCHES])
    merged = expected.merge(got, on=["batch", "jcbh"], suffixes=("_expected", "_got"), validate="1:1")
    assert len(merged) == len(expected) == len(got) == 335
    for col in ("class", "auto_class", "xzqdm"):
        diff = merged[merged[f"{col}_expected"] != merged[f"{col}_got"]]
        assert diff.empty, diff[["batch", "jcbh", f"{col}_expected", f"{col}_got"]].to_string()
    area_cols = [c for c in got.columns if c.endswith("_m2") and c in expected.columns]
    assert len(area_cols) >= 16
    for col in area_cols:
        # expected_polygons.csv holds 2 decimals
        off = (merged[f"{col}_expected"] - merged[f"{col}_got"]).abs() > 0.0051
        assert not off.any(), merged.loc[off, ["batch", "jcbh", f"{col}_expected", f"{col}_got"]].to_string()


def test_rerun_loads_nothing_and_gives_identical_csv(sample):
    folder, out, url, _ = sample
    env = {**os.environ, "DATABASE_URL": url}
    again = folder / "again"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(folder / "county.toml"), "--batch", "2022",
                           "--out", str(again)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("未变化，跳过") == 16
    for f in ("polygons.csv", "township_stats.csv", "report.md"):
        assert (again / f).read_bytes() == (out / "2022" / f).read_bytes(), f
