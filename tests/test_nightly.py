"""The unattended nightly run: incremental, recorded, locked, killable, observable.

Each test runs the real CLI in a subprocess on the generated sample county
against its own database in the session's throwaway cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sample_source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample_src")
    subprocess.run([sys.executable, str(ROOT / "data" / "generate_sample.py"), "--out", str(folder)],
                   check=True, capture_output=True)
    return folder


@pytest.fixture
def county(tmp_path, sample_source, pg_cluster, migrated_template):
    """A fresh copy of the sample county and a fresh database; yields a runner."""
    folder = tmp_path / "county"
    shutil.copytree(sample_source, folder)
    name = f"nightly_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name, template=migrated_template)
    env = {**os.environ, "DATABASE_URL": url, "PGAPPNAME": name}
    env.pop("PGSERVICE", None)

    class County:
        toml = folder / "county.toml"
        out = tmp_path / "out"
        database_url = url
        app_name = name

        def cli(self, *args, check=True, extra_env=None):
            proc = subprocess.run([sys.executable, "-m", "pipeline", *args], env={**env, **(extra_env or {})},
                                  capture_output=True, text=True, timeout=600)
            if check and proc.returncode != 0:
                pytest.fail(f"exit {proc.returncode}\n{proc.stderr}")
            return proc

        def run(self, *args, **kw):
            return self.cli("run", str(self.toml), "--out", str(self.out), *args, **kw)

        def popen(self, *args, extra_env=None):
            return subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(self.toml), "--out", str(self.out),
                                     *args], env={**env, **(extra_env or {})}, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)

        def sql(self, query, params=()):
            with psycopg.connect(url, autocommit=True) as c:
                return c.execute(query, params).fetchall()

    yield County()
    pg_cluster.drop_database(name)


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under folder (logs excepted): inode, mtime_ns and content."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and "logs" not in p.parts}


def results(c) -> list[tuple]:
    return c.sql("SELECT batch, jcbh, class, area_m2, illegal_m2 FROM weipian.change_result ORDER BY batch, jcbh")


def wait_for(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    """Read the child's stderr until `marker` appears."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return
    proc.kill()
    pytest.fail(f"never saw {marker!r}; stderr:\n{''.join(seen)}")


def test_a_night_with_nothing_new_rewrites_nothing(county):
    county.run()
    before = snapshot(county.out)
    assert {"2021/polygons.csv", "2022/report.md", "2023Q2/classified.gpkg"} <= set(before)
    state = county.sql("SELECT batch, inputs_digest, classified_at FROM weipian.batch_state ORDER BY batch")

    again = county.run()
    assert "输入未变化，沿用已有判定结果" in again.stderr
    assert again.stderr.count("输出未变化，未重写") == 3
    assert snapshot(county.out) == before
    assert county.sql("SELECT batch, inputs_digest, classified_at FROM weipian.batch_state ORDER BY batch") == state


def test_a_changed_field_check_redoes_only_its_batch(county):
    county.run()
    before = snapshot(county.out)
    csv_path = county.toml.parent / "WYHC_2021.csv"
    text = csv_path.read_text(encoding="utf-8-sig")
    first_row = text.splitlines()[1]
    jcbh = first_row.split(",")[0]
    csv_path.write_text(text + f"{jcbh},否,,复核员,2021-12-30,补充核查\n", encoding="utf-8-sig")

    proc = county.run()
    assert "批次 2021：" in proc.stderr and "批次 2022：" not in proc.stderr
    after = snapshot(county.out)
    assert after["2021/polygons.csv"] != before["2021/polygons.csv"]
    for name in ("2022/polygons.csv", "2022/report.md", "2023Q2/township_stats.csv"):
        assert after[name] == before[name], name
    assert county.sql("SELECT class FROM weipian.change_result WHERE batch = '2021' AND jcbh = %s",
                      (jcbh,)) == [("unchanged",)]


def test_a_changed_reference_layer_redoes_every_batch(county):
    county.run()
    with open(county.toml, "a", encoding="utf-8") as f:
        f.write('\n[settings]\n' if "[settings]" not in county.toml.read_text(encoding="utf-8") else "")
    toml = county.toml.read_text(encoding="utf-8").replace("min_part_m2 = 10", "min_part_m2 = 11")
    county.toml.write_text(toml, encoding="utf-8")
    proc = county.run()
    for b in ("2021", "2022", "2023Q2"):
        assert f"批次 {b}：" in proc.stderr


def test_runs_are_recorded(county):
    county.run("--batch", "2022")
    last = json.loads(county.cli("runs", "--last", "--json").stdout)
    assert last["status"] == "ok" and last["exit_code"] == 0
    assert [s["name"] for s in last["stages"]] == ["ingest", "classify", "report"]
    assert last["stages"][0]["rows_in"] == 6962
    assert all(len(i["checksum"]) == 64 and i["loaded"] for i in last["inputs"])
    assert len(last["inputs"]) == 16
    listing = county.cli("runs").stdout
    assert "ok" in listing and "--batch 2022" in listing


def test_one_run_at_a_time(county):
    with psycopg.connect(county.database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('weipian.county'), hashtext('140824'))")
        t0 = time.monotonic()
        proc = county.run(check=False)
        assert time.monotonic() - t0 < 30
    assert proc.returncode == 4
    assert "已有一个运行在进行中" in proc.stderr
    assert proc.stderr.strip().count("\n") < 3


def test_a_run_waits_for_a_lock_freed_within_seconds(county):
    holder = psycopg.connect(county.database_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext('weipian.county'), hashtext('140824'))")
    threading.Timer(3, holder.close).start()  # the other run ends three seconds into this one
    county.run()


def test_a_run_killed_mid_statement_frees_its_county_for_the_next(county):
    """SIGKILL a weipian process while its backend is inside a long statement: the backend
    notices the lost client within seconds, ends, and frees the county's lock."""
    script = ("from pipeline import db, runs\n"
              "conn = db.connect(autocommit=True)\n"
              "runs.acquire_lock(conn, '140824')\n"
              "conn.execute('SELECT pg_sleep(120)')\n")
    env = {**os.environ, "DATABASE_URL": county.database_url, "PGAPPNAME": county.app_name}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT)
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'SELECT pg_sleep%%'"
    deadline = time.monotonic() + 60
    while not (busy := county.sql(query, (county.app_name,))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert busy, "the statement never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    county.run()  # at once: within its wait for the lock the old backend is gone
    assert not county.sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", busy[0])


@pytest.mark.parametrize("stage", ["classify", "report"])
def test_killed_mid_stage_leaves_previous_results(county, stage):
    county.run()
    before_rows, before_files = results(county), snapshot(county.out)
    # make every batch's inputs change, so the next run has real work in each stage
    toml = county.toml.read_text(encoding="utf-8").replace("min_part_m2 = 10", "min_part_m2 = 500")
    county.toml.write_text(toml, encoding="utf-8")

    proc = county.popen(extra_env={"WEIPIAN_PAUSE_AT": stage})
    wait_for(proc, f"paused at {stage}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    if stage == "classify":  # nothing of the half-done judgement is visible
        assert results(county) == before_rows
    assert snapshot(county.out) == before_files  # no file half-written or replaced
    runs = json.loads(county.cli("runs", "--last", "--json").stdout)
    assert runs["status"] == "interrupted"

    county.run()
    assert results(county) != before_rows  # min_part_m2 = 500 changes some judgements
    assert not [p for p in county.out.rglob(".*") if p.name != ".weipian-outputs.json"]


def test_lost_database_connection_fails_cleanly_and_next_run_completes(county):
    county.run()
    before = results(county)
    toml = county.toml.read_text(encoding="utf-8").replace("min_part_m2 = 10", "min_part_m2 = 500")
    county.toml.write_text(toml, encoding="utf-8")
    proc = county.popen(extra_env={"WEIPIAN_PAUSE_AT": "classify", "WEIPIAN_PAUSE_SECONDS": "3"})
    wait_for(proc, "paused at classify")
    killed = county.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                        "AND pid <> pg_backend_pid()", (county.app_name,))
    assert killed
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "数据库连接失败或中断" in err
    assert results(county) == before
    last = json.loads(county.cli("runs", "--last", "--json").stdout)
    assert last["status"] == "failed" and last["exit_code"] == 3
    county.run()


def test_full_disk_keeps_previous_files(county, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full-disk case is not exercised")
    try:
        county.out = small / "out"
        county.run("--batch", "2022")
        before = snapshot(county.out)
        filler = small / "filler"
        with open(filler, "wb") as f:  # fill the disk
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        toml = county.toml.read_text(encoding="utf-8").replace("min_part_m2 = 10", "min_part_m2 = 500")
        county.toml.write_text(toml, encoding="utf-8")
        proc = county.run("--batch", "2022", check=False)
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines()[-1].startswith("错误 error:")
        assert snapshot(county.out) == before
        filler.unlink()
        county.run("--batch", "2022")
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_json_logs_and_log_file(county):
    proc = county.cli("--log-format", "json", "run", str(county.toml), "--batch", "2022", "--out", str(county.out))
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert lines and all(line["run_id"] == lines[0]["run_id"] and line["county"] == "140824" for line in lines)
    assert any(line.get("stage") == "ingest" for line in lines)
    log_file = county.out.parent / "logs" / f"run-{lines[0]['run_id']}.log"
    file_lines = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert [line["message"] for line in file_lines] == [line["message"] for line in lines]


def test_password_never_reaches_logs_or_records(county):
    secret = "s3cr3t-Pa55"
    url = county.database_url + ("&" if "?" in county.database_url else "?") + f"password={secret}"
    proc = county.cli("run", str(county.toml), "--batch", "2022", "--out", str(county.out),
                      extra_env={"DATABASE_URL": url})
    assert secret not in proc.stdout + proc.stderr
    for p in county.out.parent.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
    assert not county.sql("SELECT id FROM weipian.run WHERE run::text LIKE %s", (f"%{secret}%",))


def test_credentials_in_county_toml_are_refused(county):
    toml = county.toml.read_text(encoding="utf-8") + '\n[database]\nurl = "postgresql://u:p@host/db"\n'
    county.toml.write_text(toml, encoding="utf-8")
    proc = county.run(check=False)
    assert proc.returncode == 2
    assert "must not hold them" in proc.stderr


def test_same_inputs_give_byte_identical_csv_in_another_database(county, pg_cluster, migrated_template):
    county.run("--batch", "2022")
    name = f"again_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name, template=migrated_template)
    try:
        other = county.out.parent / "other"
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "pipeline", "run", str(county.toml), "--batch", "2022",
                        "--out", str(other)], env=env, check=True, capture_output=True)
        for f in ("polygons.csv", "township_stats.csv"):
            assert (other / f).read_bytes() == (county.out / f).read_bytes(), f
    finally:
        pg_cluster.drop_database(name)


def test_deploy_units_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed: unit syntax not checked")
    weipian = Path(sys.executable).with_name("weipian")
    for name in ("weipian-nightly@.service", "weipian-nightly@.timer"):
        text = (ROOT / "deploy" / name).read_text(encoding="utf-8")
        text = text.replace("/srv/weipian/.venv/bin/weipian", str(weipian))
        text = text.replace("User=weipian\n", "").replace("Group=weipian\n", "")
        (tmp_path / name.replace("@", "@140824")).write_text(text, encoding="utf-8")
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "weipian-nightly@140824.service"),
                           str(tmp_path / "weipian-nightly@140824.timer")], capture_output=True, text=True)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "weipian" in line and "WorkingDirectory" not in line]
    assert proc.returncode == 0 or not problems, proc.stdout + proc.stderr
    cron = (ROOT / "deploy" / "weipian.cron").read_text(encoding="utf-8")
    entries = [line for line in cron.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert entries and all(len(line.split()) >= 7 for line in entries)
