"""The partitioned layout (sql/partitioning/partition_by_county.sql) gives the plain layout's results.

The sample county runs twice through the CLI: once on the migrated schema, once
after converting every per-county table into LIST partitions by county_code.
Classes, pieces, statistics and the output files must be the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTITIONING = ROOT / "sql" / "partitioning" / "partition_by_county.sql"
CODE = "140824"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample_partitioned")
    subprocess.run([sys.executable, str(ROOT / "data" / "generate_sample.py"), "--out", str(folder)],
                   check=True, capture_output=True)
    return folder


def _run(url: str, toml: Path, out: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PGSERVICE"}
    env.update(DATABASE_URL=url, PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(toml), "--out", str(out)],
                          env=env, capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def layouts(sample, pg_cluster, migrated_template, tmp_path_factory):
    """(plain url, partitioned url, plain out, partitioned out), both runs done."""
    names = [f"plain_{uuid.uuid4().hex[:8]}", f"parted_{uuid.uuid4().hex[:8]}"]
    plain, parted = (pg_cluster.create_database(n, template=migrated_template) for n in names)
    with psycopg.connect(parted, autocommit=True) as conn:
        conn.execute(PARTITIONING.read_text(encoding="utf-8"))
        conn.execute("SELECT weipian.partition_by_county(ARRAY[%s])", (CODE,))
    out = tmp_path_factory.mktemp("outputs")
    _run(plain, sample / "county.toml", out / "plain")
    _run(parted, sample / "county.toml", out / "parted")
    yield plain, parted, out / "plain", out / "parted"
    for n in names:
        pg_cluster.drop_database(n)


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_every_county_table_is_partitioned_and_rows_sit_in_the_county_partition(layouts):
    _, parted, _, _ = layouts
    tables = _rows(parted, "SELECT unnest(weipian.partitioned_tables())")
    partitioned = {r[0] for r in _rows(parted, """
        SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'weipian'""")}
    assert {t for (t,) in tables} <= partitioned
    for table in ("change_piece", "landuse", "change_result"):
        where = _rows(parted, f"""SELECT c.relname, count(*) FROM weipian.{table} t
                                  JOIN pg_class c ON c.oid = t.tableoid GROUP BY 1""")
        assert [w[0] for w in where] == [f"{table}_p{CODE}"], where


def test_results_are_identical(layouts):
    plain, parted, _, _ = layouts
    q = """SELECT batch, jcbh, xzqdm, class, auto_class, area_m2, legal_m2, unchanged_m2, agri_m2, illegal_m2,
                  cultivated_m2, farmland_m2, illegal_cultivated_m2, illegal_farmland_m2, bnpbj_m2, wnpbj_m2,
                  wpxj_m2, lsyd_cq_m2, wbjy_m2, ssny_wba_m2, illegal_outside_ubg_m2, illegal_in_eco_m2,
                  ST_AsBinary(geom) FROM weipian.change_result ORDER BY batch, jcbh"""
    a, b = _rows(plain, q), _rows(parted, q)
    assert len(a) == len(b) == 335
    for ra, rb in zip(a, b):
        assert ra[:5] == rb[:5]
        for x, y in zip(ra[5:-1], rb[5:-1]):
            assert (x is None and y is None) or abs(x - y) < 1e-6, (ra[:2], x, y)
        assert ra[-1] == rb[-1]


def test_pieces_are_identical(layouts):
    plain, parted, _, _ = layouts
    q = """SELECT batch, jcbh, class, coalesce(subtype, ''), coalesce(xzqdm, ''),
                  round(area_m2::numeric, 6), round(cultivated_m2::numeric, 6), round(farmland_m2::numeric, 6),
                  round(ST_Area(geom)::numeric, 6)
           FROM weipian.change_piece ORDER BY 1, 2, 3, 4, 5"""
    assert _rows(plain, q) == _rows(parted, q)


def test_statistics_and_files_are_identical(layouts):
    plain, parted, out_plain, out_parted = layouts
    q = "SELECT * FROM weipian.township_stat ORDER BY selection, ord, xzqdm"
    assert _rows(plain, q) == _rows(parted, q)
    for name in ("polygons.csv", "township_stats.csv"):
        for batch in ("2021", "2022", "2023Q2"):
            assert (out_plain / batch / name).read_bytes() == (out_parted / batch / name).read_bytes(), (batch, name)


def test_a_county_added_later_lands_in_its_own_partition(layouts):
    _, parted, _, _ = layouts
    with psycopg.connect(parted) as conn:
        conn.execute("SELECT weipian.add_county_partitions('140825')")
        n = conn.execute("""SELECT count(*) FROM pg_inherits i
                            WHERE i.inhparent = 'weipian.landuse'::regclass""").fetchone()[0]
        conn.rollback()
    assert n == 3  # 140824, 140825 and the DEFAULT partition
