"""The benchmark's generator and baselines (bench/), on a small county.

The generator must write valid, loadable counties (parcels an exact coverage,
townships partitioning the county, a county.toml the pipeline reads), and the
baselines must implement the same rules: on a generated county they agree with
weipian polygon by polygon.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely

from pipeline.config import load_county

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.layers import RESULT_COLUMNS, compare, load  # noqa: E402

pytestmark = pytest.mark.slow


def _generate(out: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate_county.py"), "--out", str(out), *args],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_county")
    _generate(folder, "--parcels", "3000", "--changes", "120", "--seed", "3")
    return folder


def test_generated_county_is_a_valid_coverage_with_every_layer(county):
    info = json.loads((county / "generated.json").read_text(encoding="utf-8"))
    assert info["parcels"] == 3000 and info["changes"] == 120
    assert info["vertices_per_parcel"] >= 10
    parcels = pyogrio.read_dataframe(county / "DLTB.gpkg", layer="DLTB")
    g = np.asarray(parcels.geometry.values, dtype=object)
    assert shapely.is_valid(g).all()
    assert shapely.coverage_is_valid(g)
    towns = pyogrio.read_dataframe(county / "XZQ.shp", encoding="GBK")
    assert abs(towns.geometry.area.sum() - shapely.area(g).sum()) < 1e-3  # townships partition the county
    assert towns.XZQDM.str.startswith("140899").all()
    changes = pyogrio.read_dataframe(county / "JCTB_2023.gpkg", layer="JCTB")
    assert changes.JCBH.is_unique
    assert (~changes.geometry.is_valid).sum() >= 1  # broken rings for ingest to repair
    c = load_county(county / "county.toml")
    assert c.code == "140899" and c.batches == ["2023"]
    assert {l.kind for l in c.layers} == {"township", "landuse", "farmland", "plan", "approval", "change",
                                           "field_check"}


def test_province_counties_have_their_own_folders_and_codes(tmp_path):
    _generate(tmp_path, "--counties", "2", "--parcels", "800", "--changes", "20", "--jobs", "1")
    codes = [load_county(p).code for p in sorted(tmp_path.glob("*/county.toml"))]
    assert len(codes) == 2 and len(set(codes)) == 2
    a, b = (pyogrio.read_bounds(tmp_path / c / "DLTB.gpkg", layer="DLTB")[1] for c in codes)
    assert a[2].max() < b[0].min() or b[2].max() < a[0].min() or a[3].max() < b[1].min() \
        or b[3].max() < a[1].min()  # side by side, not on top of each other


def test_ingest_bench_dltb_has_the_30_fields_of_sandiao_and_loads_whole(tmp_path, run_cli, database_url):
    # bench/generate_parcels.py: the DLTB a county is given (30 fields at their widths),
    # of which weipian reads 8; every parcel loads, with the values it reads
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate_parcels.py"), "--parcels", "500",
                    "--out", str(tmp_path)], check=True, capture_output=True)
    info = pyogrio.read_info(tmp_path / "DLTB.shp")
    assert len(info["fields"]) == 30 and info["encoding"] == "UTF-8"
    with open(tmp_path / "DLTB.dbf", "rb") as f:
        assert int.from_bytes(f.read(12)[10:12], "little") == 1152  # bytes a record, as a 三调 export
    source = pyogrio.read_dataframe(tmp_path / "DLTB.shp", read_geometry=False)
    run_cli("ingest", tmp_path / "county.toml")
    with psycopg.connect(database_url) as conn:
        loaded = pd.DataFrame(conn.execute("SELECT bsm, dlbm_source, kcxs, tbmj FROM weipian.landuse").fetchall(),
                              columns=["BSM", "DLBM", "KCXS", "TBMJ"])
    assert len(loaded) == 500
    both = source[["BSM", "DLBM", "KCXS", "TBMJ"]].merge(loaded, on="BSM", suffixes=("", "_db"))
    assert len(both) == 500
    assert (both.DLBM == both.DLBM_db).all()
    assert np.allclose(both.KCXS, both.KCXS_db) and np.allclose(both.TBMJ, both.TBMJ_db)


@pytest.fixture(scope="module")
def classified(county, pg_cluster, migrated_template):
    name = f"bench_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name, template=migrated_template)
    env = {k: v for k, v in os.environ.items() if k != "PGSERVICE"}
    env.update(DATABASE_URL=url, PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(county / "county.toml"),
                           "--out", str(county / "out")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(url) as conn:
        cur = conn.execute(f"SELECT {', '.join(RESULT_COLUMNS)} FROM weipian.change_result ORDER BY change_id")
        ours = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
        layers = load(conn, "140899", "2023")
    yield url, ours, layers
    pg_cluster.drop_database(name)


def test_geopandas_baseline_agrees_with_weipian(classified):
    from bench import baseline_geopandas

    _, ours, layers = classified
    result = compare(ours, baseline_geopandas.classify(layers), 0.01, 1e-6)
    assert result["ok"], result


@pytest.mark.skipif(importlib.util.find_spec("duckdb_ext") is None, reason="the bench extra (DuckDB) is not installed")
def test_duckdb_baseline_agrees_with_weipian(classified):
    from bench import baseline_duckdb

    _, ours, layers = classified
    con = baseline_duckdb.connect()
    baseline_duckdb.load(con, layers)
    result = compare(ours, baseline_duckdb.classify(con, layers), 0.01, 1e-6)
    assert result["ok"], result
