# weipian — 土地卫片执法 PostGIS pipeline.
#
#   make demo    run every stage on the sample county (sets up what is missing)
#   make test    run the test suite against a throwaway PostGIS cluster
#   make bench   time a generated 300k-parcel county against geopandas, DuckDB and naive SQL
#
# Both install the Debian packages (PostgreSQL + PostGIS, GDAL) when missing,
# create the virtualenv .venv and the sample data. `make help` lists the rest.
SHELL = /bin/bash
.SHELLFLAGS = -o pipefail -ec

VENV   ?= .venv
PY     := $(VENV)/bin/python
SAMPLE := data/sample/county.toml
OUT    ?= out/demo

.PHONY: help
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

.PHONY: setup
setup: system-packages $(VENV)/.installed  ## install what is missing (Debian packages, virtualenv)

.PHONY: system-packages
system-packages:
	@scripts/setup-system.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

.PHONY: sample
sample: $(SAMPLE)  ## generate the sample county in data/sample/

$(SAMPLE): data/generate_sample.py | setup
	$(PY) data/generate_sample.py --out data/sample

.PHONY: demo
demo: setup sample  ## run the main job on the sample county; prints where the reports are
	$(PY) -m pipeline run $(SAMPLE) --out $(OUT)
	$(PY) -m pipeline run $(SAMPLE) --batch 2021-2022 --out $(OUT)/2021-2022
	@echo "报告 reports: $(OUT)/*/report.pdf and report.md (tables.xlsx, polygons.csv, township_stats.csv, classified.gpkg/.shp/.gdb beside each)"

.PHONY: nightly
nightly: setup  ## the unattended run: make nightly COUNTY=path/to/county.toml [NIGHTLY_OUT=dir]
	@test -n "$(COUNTY)" || { echo "usage: make nightly COUNTY=path/to/county.toml [NIGHTLY_OUT=out/<code>]" >&2; exit 2; }
	$(PY) -m pipeline --log-format json run $(COUNTY) $(if $(NIGHTLY_OUT),--out $(NIGHTLY_OUT),)

.PHONY: test
test: setup  ## run the tests (real PostGIS, throwaway cluster)
	$(PY) -m pytest -q

.PHONY: bench
bench: setup $(VENV)/.bench-installed  ## benchmark a generated 300k-parcel county vs geopandas, DuckDB, naive SQL (bench/out/bench.json)
	$(PY) bench/run_bench.py $(BENCH_ARGS)

.PHONY: bench-scaling
bench-scaling: setup $(VENV)/.bench-installed  ## make bench, plus twice the parcels and twice the change polygons
	$(PY) bench/run_bench.py --scaling $(BENCH_ARGS)

.PHONY: bench-province
bench-province: setup $(VENV)/.bench-installed  ## 20 generated counties through weipian run, 2 at a time (bench/out/province.json)
	$(PY) bench/run_province.py $(PROVINCE_ARGS)

.PHONY: bench-ingest
bench-ingest: setup  ## weipian ingest vs ogr2ogr on a generated 300k-parcel DLTB: features/s, ratio, peak RSS
	$(PY) bench/bench_ingest.py $(BENCH_INGEST_ARGS)

$(VENV)/.bench-installed: pyproject.toml
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench]'
	@touch $@

.PHONY: db-up
db-up: setup  ## start the embedded database
	$(PY) -m pipeline db up

.PHONY: db-down
db-down:  ## stop the embedded database
	$(PY) -m pipeline db down

.PHONY: clean
clean:  ## remove outputs and generated sample data (keeps the database)
	rm -rf out data/sample
