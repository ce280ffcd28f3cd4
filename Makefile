# One entry point for developers and CI. `make demo` and `make test` create everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS_STAMP := .tools/.installed

.PHONY: dev demo test test-unit test-functional test-e2e lint format build validate bench emr-artifacts clean iam-report

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e ".[local,dev]"
	touch $(STAMP)

dev: $(STAMP)  ## the development environment (.venv)

demo: $(STAMP)  ## run the whole pipeline locally on sample data and print what it did
	$(BIN)/lakehouse demo

# Every local run checks each call against its role in template.yaml (docs/IAM.md); explicit here.
test: $(STAMP)  ## the whole test suite: unit, functional (moto, Spark), end-to-end
	LAKEHOUSE_IAM=on $(BIN)/pytest -n 2 --dist loadgroup tests

test-unit: $(STAMP)
	$(BIN)/pytest -n 2 tests/unit

test-functional: $(STAMP)
	LAKEHOUSE_IAM=on $(BIN)/pytest tests/functional

test-e2e: $(STAMP)
	LAKEHOUSE_IAM=on $(BIN)/pytest tests/e2e

IAM_RECORD := $(CURDIR)/.lakehouse/iam-record.jsonl
iam-report: $(STAMP)  ## the grants no test exercises, per role (least-privilege candidates)
	mkdir -p .lakehouse && rm -f $(IAM_RECORD)
	-LAKEHOUSE_IAM=on LAKEHOUSE_IAM_RECORD=$(IAM_RECORD) $(BIN)/pytest -n 2 --dist loadgroup -q \
		tests/e2e tests/functional/test_ingest_state_machine.py tests/functional/test_maintenance_state_machine.py
	$(BIN)/python scripts/iam_unused_grants.py $(IAM_RECORD)

lint: $(STAMP)
	$(BIN)/ruff check src tests functions jobs bench scripts
	$(BIN)/ruff format --check src tests functions jobs bench scripts
	$(BIN)/mypy src functions jobs
	PYTHONPATH=src $(BIN)/lint-imports  # this checkout's package, whatever is installed

format: $(STAMP)
	$(BIN)/ruff check --fix src tests functions jobs bench scripts
	$(BIN)/ruff format src tests functions jobs bench scripts

$(TOOLS_STAMP): scripts/validate.sh
	bash scripts/validate.sh --install
	touch $(TOOLS_STAMP)

validate: $(STAMP) $(TOOLS_STAMP)  ## every offline check of the template and state machines
	bash scripts/validate.sh

build: $(STAMP) $(TOOLS_STAMP)  ## sam build without Docker (layers use BuildMethod: makefile)
	bash scripts/validate.sh --build-only

emr-artifacts: $(STAMP)  ## dist/lakehouse_emr.zip + dist/derived_models.json (scripts/upload_artifacts.sh uploads them)
	$(BIN)/python scripts/emr_bundle.py dist/lakehouse_emr.zip
	PYTHONPATH=src $(BIN)/python -m lakehouse.sql.derived datasets > dist/derived_models.json

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/large_file.py
	$(BIN)/python bench/local_pipeline.py
	$(BIN)/python bench/burst.py
	$(BIN)/python bench/batch_stage.py
	$(BIN)/python bench/lambda_cold_start.py
	$(BIN)/python bench/throughput_model.py
	$(BIN)/python bench/check_cost.py

clean:
	rm -rf .lakehouse .aws-sam .pytest_cache .mypy_cache .ruff_cache
