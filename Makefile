# pvdgeo: make as ETL.
#
# Targets are real files; their prerequisites are the inputs and the code that builds
# them, so editing geo/access/searches.py rebuilds only what depends on access times.
#
#   make install                 create .venv and install the package, test and web deps
#   make test                    run the test suite (installs first if needed)
#   make demo                    the whole pipeline for the demo town (Pont-de-Veyle 01306)
#   make town INSEE=46127        the whole pipeline for one town, into data/out/<INSEE>/
#   make data                    fetch every national dataset into data/raw/
#   make facility-counts         facility counts per commune for all France (data/interim/)
#   make facility-trends         BPE counts of every vintage and their changes (data/interim/)
#   make themes                  Data Territoria themes: tables of the downloaded ones, status
#   make portrait INSEE=46127    the town portrait compared with similar towns (portrait.html)
#   make typology-stats          national statistics by typology (data/national/typologie/)
#   make landcover-communes      CORINE shares of every commune land cover covers (data/interim/)
#   make batch [WORKERS=2]       every PVD town on Dask (resumable), then the national tables
#   make bench                   benchmarks, figures in bench/results/
#   make bench-pvd               the whole PVD list timed on this machine (about an hour)
#   make viewer                  (re)build the map viewer of every built town
#   make site                    the national dashboard of every commune (data/out/site/)
#   make serve                   serve the site and viewer on http://127.0.0.1:$(PORT)/
#   make clean                   remove outputs (data/out, data/interim, data/national)
#
# Offline: GEO_MIRROR=../shared/data make demo  (a directory or an http(s):// base URL)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PVDGEO := $(BIN)/pvdgeo
DATA   := data
RAW    := $(DATA)/raw
INTERIM:= $(DATA)/interim
INSEE  ?= 01306
# A town given on the command line as a former code, a municipal arrondissement (75101)
# or a name is resolved once to its current code: one folder per town (data/out/75056).
ifeq ($(origin INSEE),command line)
ifneq ($(wildcard $(PVDGEO)),)
RESOLVED_INSEE := $(shell $(PVDGEO) -q commune --code '$(INSEE)')
ifeq ($(RESOLVED_INSEE),)
$(error INSEE=$(INSEE) is not a commune (see the message above))
endif
override INSEE := $(RESOLVED_INSEE)
endif
endif
OUT    := $(DATA)/out/$(INSEE)
LOGS   := $(OUT)/logs
PORT   ?= 8765

VENV_STAMP := $(VENV)/.installed
WEB_STAMP  := node_modules/.installed

.PHONY: install install-web test lint demo town data bench bench-pvd serve viewer site clean \
	distclean help batch \
	facility-counts facility-trends portrait typology-stats \
	landcover-communes themes
.DEFAULT_GOAL := help

help:
	@sed -n '3,/^$$/p' Makefile | sed -e 's/^# \{0,1\}//' -e 's/$$(PORT)/$(PORT)/'

# --- environment ----------------------------------------------------------------

install: $(VENV_STAMP) $(WEB_STAMP)

$(VENV_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install-web: $(WEB_STAMP)

$(WEB_STAMP): package.json $(wildcard package-lock.json)
	npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error
	@touch $@

test: $(VENV_STAMP) $(WEB_STAMP)
	$(BIN)/pytest

lint: $(VENV_STAMP)
	$(BIN)/ruff check geo tests scripts bench
	$(BIN)/mypy

# --- raw data ----------------------------------------------------------------------
# data/raw/datasets.mk is generated from the catalogue: one RAW_<id> variable and one
# fetch rule per dataset, so stages below can name their raw inputs as prerequisites.

$(RAW)/datasets.mk: $(DATA)/sources.toml geo/sources.py geo/_make.py | $(VENV_STAMP)
	@mkdir -p $(@D)
	$(PVDGEO) -q make-rules datasets > $@.tmp && mv $@.tmp $@

# data/raw/code.mk: CODE_<stage> and CODE_<national table>, every source file a recipe's
# command runs (its modules and every geo module they import, found in their imports, and
# the data files read as code), so editing any of them rebuilds what depends on it.
GEO_SOURCES := $(shell find geo -name '*.py' 2>/dev/null)
$(RAW)/code.mk: $(GEO_SOURCES) | $(VENV_STAMP)
	@mkdir -p $(@D)
	$(PVDGEO) -q make-rules code > $@.tmp && mv $@.tmp $@

# Generated fragments are read only for goals that need data (not for a bare `make`,
# which shows the help, nor for install, lint or clean).
NO_DATA_GOALS := install install-web help clean distclean lint
NEEDS_DATA := $(if $(filter $(NO_DATA_GOALS),$(or $(MAKECMDGOALS),help)),,yes)

ifeq ($(NEEDS_DATA),yes)
-include $(RAW)/datasets.mk $(RAW)/code.mk
endif

data: $(VENV_STAMP)
	$(PVDGEO) fetch --national

# --- national reference tables -----------------------------------------------------

REFERENCE := $(INTERIM)/communes.parquet
$(REFERENCE): $(RAW_GROUP_reference) $(CODE_reference) | $(VENV_STAMP)
	$(PVDGEO) reference

# Facility counts per category and per 10,000 inhabitants for every commune (BPE 2013
# counts, or the geolocated BPE when downloaded; Muséofile, CNC, festivals, Géorisques).
FACILITY_COUNTS := $(INTERIM)/facilities_communes.parquet
$(FACILITY_COUNTS): $(REFERENCE) $(RAW_bpe_2013_counts) $(RAW_museofile) $(RAW_cinemas) \
		$(RAW_festivals) $(RAW_eoliennes) $(RAW_france_services) $(RAW_communes_polygons) \
		$(CODE_facility_counts) | $(VENV_STAMP)
	$(PVDGEO) facility-counts --out $@

facility-counts: $(FACILITY_COUNTS)

# Facility counts of every BPE vintage on one nomenclature and their changes per commune
# (geo.facility_trends): the BPE 2009 and 2013 counts, and the geolocated vintages once
# downloaded (`pvdgeo fetch bpe_xy_2021`...); codes re-keyed by data/bpe_passage.toml.
BPE_VINTAGES := $(RAW_bpe_2009_counts) $(RAW_bpe_2013_counts) \
	$(wildcard $(RAW_bpe_xy_2018) $(RAW_bpe_xy_2019) $(RAW_bpe_xy_2020) $(RAW_bpe_xy_2021) \
	$(RAW_bpe_xy))
FACILITY_TRENDS := $(INTERIM)/facility_trends_communes.parquet
$(FACILITY_TRENDS): $(REFERENCE) $(BPE_VINTAGES) $(CODE_facility_trends) \
		geo/cli/facilities.py $(DATA)/bpe_passage.toml $(DATA)/sources.toml | $(VENV_STAMP)
	$(PVDGEO) facility-trends --out $@

facility-trends: $(FACILITY_TRENDS)

# Data Territoria themes (geo.themes): jobs, housing prices, commuting, higher education,
# demography, renewable production, energy consumption. One national commune table per
# theme whose files are downloaded (none is in the test mirror: `pvdgeo themes` prints
# the `pvdgeo fetch ...` command of the missing ones); a theme without its files has no
# rule here, and the typology statistics and portraits report it as missing input.
THEMES := emploi logement mobilite etudiants demographie energie_production \
	energie_consommation
THEME_TABLES :=
define THEME_RULE
THEME_RAW_$(1) := $$(wildcard $$(RAW_GROUP_theme_$(1)))
ifneq ($$(THEME_RAW_$(1)),)
THEME_TABLES += $(INTERIM)/theme_$(1)_communes.parquet
$(INTERIM)/theme_$(1)_communes.parquet: $(REFERENCE) $$(THEME_RAW_$(1)) $$(CODE_themes) \
		$(DATA)/sources.toml | $(VENV_STAMP)
	$(PVDGEO) themes --build $(1)
endif
endef
$(foreach t,$(THEMES),$(eval $(call THEME_RULE,$(t))))

themes: $(THEME_TABLES) | $(VENV_STAMP)
	$(PVDGEO) themes

# National statistics by typology (geo.portrait): population per year and period, APL,
# facilities per 10,000 inhabitants and their change over BPE vintages for petites/
# moyennes/grandes villes, PVD and ACV; one table per Data Territoria theme downloaded.
NATIONAL := $(DATA)/national
TYPOLOGY_STATS := $(NATIONAL)/typologie/index.html
$(TYPOLOGY_STATS): $(REFERENCE) $(FACILITY_COUNTS) $(FACILITY_TRENDS) $(THEME_TABLES) \
		$(RAW_GROUP_apl) $(CODE_typology_stats) \
		$(wildcard $(INTERIM)/landcover_communes.parquet) | $(VENV_STAMP)
	$(PVDGEO) typology-stats --out $(@D)

typology-stats: $(TYPOLOGY_STATS)

# CORINE shares of every commune a catalogued land-cover dataset covers (the Lot here;
# production: pass the national CORINE with `pvdgeo landcover-communes
# --landcover FILE`).
LANDCOVER_COMMUNES := $(INTERIM)/landcover_communes.parquet
$(LANDCOVER_COMMUNES): $(REFERENCE) $(RAW_communes_polygons) \
		$(wildcard $(RAW_GROUP_landcover) $(RAW_GROUP_communes_fullres)) $(DATA)/sources.toml \
		$(CODE_landcover_communes) | $(VENV_STAMP)
	$(PVDGEO) landcover-communes --out $@

landcover-communes: $(LANDCOVER_COMMUNES)

# --- one town --------------------------------------------------------------------------
# Each town is an independent unit: inputs, outputs and logs under data/out/<INSEE>/.
# Every recipe runs one stage of geo.stages (the same code as `pvdgeo town` and
# `pvdgeo batch`): the stage takes the town's lock, runs the earlier stages it needs when
# their files are missing, skips its work when its code, settings and inputs have not
# changed since it last ran (then marks its files fresh), and appends its log to
# $(LOGS)/<stage>.log. Outputs are written atomically, so an interrupted run never leaves
# a half-written file and targets are never deleted on error (.PRECIOUS below): a second
# run of the same town waits for the first instead of racing it.

# Settings stamps: the settings each stage reads (.pvdgeo/settings-<stage>.json),
# rewritten only when they change, so a setting given by pvdgeo.toml, GEO_* or --set
# reruns what depends on it. Remade on every run (a short process), seen as changed
# only when the values are.
STAMPS := $(OUT)/.pvdgeo
STAMP = $(STAMPS)/settings-$(1).json
$(foreach s,card facilities access aggregate publish portrait,$(call STAMP,$(s))) &: \
		FORCE | $(VENV_STAMP)
	@$(PVDGEO) -q settings-stamps $(INSEE) --out $(OUT)

FORCE:
.PHONY: FORCE

TOWN_CARD := $(OUT)/town.json
CATCHMENT := $(OUT)/catchment.parquet
$(TOWN_CARD) $(CATCHMENT) &: $(REFERENCE) $(RAW_communes_polygons) $(CODE_card) \
		$(call STAMP,card) | $(VENV_STAMP)
	$(PVDGEO) card $(INSEE) --out $(OUT)

TOWN_OUTPUTS := $(TOWN_CARD) $(CATCHMENT)

# Facilities of the town and its catchment communes (geo.facilities): the town's OSM
# extract when one is catalogued (RAW_TOWN_osm_<insee>), the national culture, energy and
# public-service registers; the geolocated BPE too when downloaded (`pvdgeo fetch bpe_xy`).
FACILITY_RAW  := $(RAW_museofile) $(RAW_cinemas) $(RAW_festivals) $(RAW_eoliennes) \
                 $(RAW_france_services)
FACILITIES := $(OUT)/facilities.parquet
$(FACILITIES): $(TOWN_CARD) $(CATCHMENT) $(RAW_TOWN_osm_$(INSEE)) $(FACILITY_RAW) \
		$(CODE_facilities) $(call STAMP,facilities) | $(VENV_STAMP)
	$(PVDGEO) facilities $(INSEE) --out $(OUT)
TOWN_OUTPUTS += $(FACILITIES)

# Walking and cycling access (geo.network, geo.streets, geo.access): street graphs of the
# town and its catchment, minutes to the nearest facility of each category and key
# subcategory, counts within 5/10/15/20 min, isochrones from the town hall. Runs when the
# catalogue has a street source for the town (an OSM extract, its road lines, or its
# commune's file in a département archive: data/raw/streets.mk names it); otherwise the
# stage logs why in logs/access.log, so every town completes. ACCESS_OUTPUTS is empty for
# towns without streets: later stages can list it as prerequisites.
$(RAW)/streets.mk: $(DATA)/sources.toml geo/streets.py geo/sources.py geo/_make.py \
		| $(VENV_STAMP)
	@mkdir -p $(@D)
	$(PVDGEO) -q make-rules streets > $@.tmp && mv $@.tmp $@

ifeq ($(NEEDS_DATA),yes)
-include $(RAW)/streets.mk
endif

STREETS  := $(STREETS_$(INSEE))
ifneq ($(STREETS),)
ACCESS_OUTPUTS := $(foreach m,walk bike,$(OUT)/access_$(m)_nodes.parquet \
                  $(OUT)/access_$(m)_edges.parquet $(OUT)/access_$(m)_facilities.parquet) \
                  $(OUT)/isochrones.parquet
$(ACCESS_OUTPUTS) &: $(STREETS) $(FACILITIES) $(TOWN_CARD) $(RAW_TOWN_dem_$(INSEE)) \
                     $(CODE_access) $(call STAMP,access) | $(VENV_STAMP)
	$(PVDGEO) access $(INSEE) --out $(OUT)
TOWN_OUTPUTS += $(ACCESS_OUTPUTS)
else
ACCESS_OUTPUTS :=
$(LOGS)/access.log: $(RAW)/streets.mk $(FACILITIES) $(CODE_access) $(call STAMP,access) \
		| $(VENV_STAMP)
	$(PVDGEO) access $(INSEE) --out $(OUT)
TOWN_OUTPUTS += $(LOGS)/access.log
endif

# H3 cells and commune indicators (geo.h3grid, geo.landcover, geo.indicators): CORINE
# shares, APL, facility counts, access times and E2SFCA when the access stage wrote its
# graph (ACCESS_OUTPUTS, empty for towns without streets); whatever input is missing is
# reported in the log and the rest still written. Land-cover and full-resolution commune
# files are prerequisites once fetched ($(wildcard)): the stage fetches those covering
# the town itself. H3_RES other than the default goes through the settings.
H3_RES ?= 8 9
AGGREGATE := $(foreach r,$(H3_RES),$(OUT)/h3_r$(r).parquet) $(OUT)/communes.parquet
$(AGGREGATE) &: $(TOWN_CARD) $(FACILITIES) $(FACILITY_COUNTS) $(ACCESS_OUTPUTS) $(RAW_GROUP_apl) \
		$(wildcard $(RAW_GROUP_landcover) $(RAW_GROUP_communes_fullres)) \
		$(DATA)/sources.toml $(CODE_aggregate) $(call STAMP,aggregate) | $(VENV_STAMP)
	$(PVDGEO) --set h3_resolutions=$(shell echo $(H3_RES) | tr ' ' ,) aggregate $(INSEE) \
		--out $(OUT)
TOWN_OUTPUTS += $(AGGREGATE)

# Town portrait (geo.portrait): peers, every indicator against the peers' and France's
# medians, HTML + CSV. Reads the national tables and the commune layer of every town run
# present (the peers' local indicators); the town's own layer when it exists.
PORTRAIT := $(OUT)/portrait.html
$(PORTRAIT): $(REFERENCE) $(FACILITY_COUNTS) $(FACILITY_TRENDS) $(THEME_TABLES) \
		$(RAW_GROUP_apl) $(FACILITIES) \
		$(OUT)/communes.parquet $(LANDCOVER_COMMUNES) $(CODE_portrait) \
		$(call STAMP,portrait) | $(VENV_STAMP)
	$(PVDGEO) portrait $(INSEE) --out $(OUT)
TOWN_OUTPUTS += $(PORTRAIT)

portrait: $(PORTRAIT)

# --- publishing: GeoPackage, PMTiles, viewer ----------------------------------------------
# The GeoPackage publishes every layer file the town run produces: the .parquet files of
# TOWN_OUTPUTS, expanded after the whole Makefile is read (secondary expansion), so a
# stage's rule (wherever it sits) that adds its file to TOWN_OUTPUTS becomes a
# prerequisite. Missing optional layers (no streets, no land cover) are simply left out.

GPKG        := $(OUT)/$(INSEE).gpkg
PMTILES     := $(OUT)/$(INSEE).pmtiles
VIEWER      := $(DATA)/out/viewer
VIEWER_CODE := geo/export/viewer.py geo/export/views.py geo/export/fields.py \
               geo/export/captions.py
# the view styles and the basemap every view is composed with
STYLES      := $(wildcard tiles/styles/*.json) tiles/basemap/basemap.json
VIEWER_SRC  := $(wildcard tiles/viewer/*)

.SECONDEXPANSION:

# (the town's OSM extract, when catalogued, gives the basemap's water)
$(GPKG) $(PMTILES) &: $$(filter %.parquet,$$(TOWN_OUTPUTS)) $(TOWN_CARD) $(RAW_TOWN_osm_$(INSEE)) \
		$(CODE_publish) $(call STAMP,publish) $(STYLES) | $(VENV_STAMP)
	$(PVDGEO) publish $(INSEE) --out $(OUT)

# The viewer lists every built town; it is rebuilt when this town's tiles or portrait change.
$(VIEWER)/towns.json: $(PMTILES) $(VIEWER_SRC) $(STYLES) $(VIEWER_CODE) $(WEB_STAMP) \
		$$(filter %/portrait.html,$$(TOWN_OUTPUTS)) | $(VENV_STAMP)
	$(PVDGEO) viewer

TOWN_OUTPUTS += $(GPKG) $(PMTILES) $(VIEWER)/towns.json

# Never delete a town output on error or interrupt: each is replaced atomically by its
# stage, and another run of the town may be relying on it.
.PRECIOUS: $(TOWN_OUTPUTS)

town: $(TOWN_OUTPUTS)
	@echo "Town $(INSEE): outputs in $(OUT)/"

demo: $(VENV_STAMP)
	$(MAKE) --no-print-directory town INSEE=01306
	@echo
	@echo "Pont-de-Veyle (01306):"
	@echo "  GeoPackage for QGIS  $(DATA)/out/01306/01306.gpkg  (drag into QGIS: styled layers)"
	@echo "  PMTiles              $(DATA)/out/01306/01306.pmtiles  (styles in tiles/styles/)"
	@echo "  Map viewer           $(VIEWER)/index.html"
	@echo "  Open the viewer:     make serve   then http://127.0.0.1:$(PORT)/viewer/?town=01306"

viewer: $(VENV_STAMP) $(WEB_STAMP)
	$(PVDGEO) viewer

# The national dashboard (geo.dashboard, geo.export.site): every commune on a France map,
# any indicator of the national tables and of the built towns, town panels compared with
# their peers, table view and CSV. Built from the towns built so far (run `make batch`
# first for all of them); SITE_ARGS passes options (e.g. --departement 01 69).
SITE_CODE := geo/dashboard.py geo/export/site.py geo/cli/site.py $(wildcard geo/portrait/*.py) \
	geo/export/classes.py $(wildcard tiles/site/*)
site: $(REFERENCE) $(FACILITY_COUNTS) $(FACILITY_TRENDS) $(RAW_GROUP_apl) \
		$(LANDCOVER_COMMUNES) $(SITE_CODE) | $(VENV_STAMP) $(WEB_STAMP)
	$(PVDGEO) site $(SITE_ARGS)

# Every PVD town on Dask distributed (geo.batch): resumable, failures in
# data/national/batch/failures.csv, then data/national/towns.parquet and the portraits.
WORKERS ?= 2
batch: $(VENV_STAMP) $(WEB_STAMP)
	@test -d $(VIEWER) || $(PVDGEO) viewer
	$(PVDGEO) batch --pvd --workers $(WORKERS)

# --- benchmarks ----------------------------------------------------------------------

bench: $(VENV_STAMP)
	@mkdir -p bench/results
	@set -e; for b in $(filter-out bench/bench_pvd.py,$(wildcard bench/bench_*.py)); do \
		echo "== $$b"; $(BIN)/python $$b; done

# The whole PVD list on this machine (about an hour): pvdgeo batch --pvd --workers 2.
bench-pvd: $(VENV_STAMP)
	@mkdir -p bench/results
	$(BIN)/python bench/bench_pvd.py $(BENCH_PVD_ARGS)

# --- serving ---------------------------------------------------------------------------

serve: $(VENV_STAMP)
	$(BIN)/python -m geo.export.serve --port $(PORT) $(DATA)/out

# --- cleaning ---------------------------------------------------------------------------

clean:
	rm -rf $(DATA)/out $(INTERIM) $(DATA)/national bench/results tests/artifacts

distclean: clean
	rm -rf $(RAW) $(VENV) node_modules
