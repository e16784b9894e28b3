# Predictive maintenance: pipeline steps, orchestrator and serving in Rust.
# `make help` lists the targets. Everything builds with the tuned `dev` profile (see
# docs/decisions/build-profiles.md) except pm-serve's image and the serving benchmark (the `serving`
# profile: release + LTO).

CARGO ?= cargo
BUCKET ?= $(CURDIR)/local-bucket

CONTAINERS ?= 0

.PHONY: help build test test-real-data test-containers images push-images lint fmt fuzz vertex-simulate monitor-simulate serve compile-specs datagen bench bench-features bench-train bench-serve clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## Build every binary (dev profile: our crates optimised, heavy dependencies not)
	$(CARGO) build --workspace --locked

test: ## Run all tests (starts a local S3 server; installs what the tests need)
	scripts/test.sh

lint: ## cargo fmt --check, clippy -D warnings, and the architecture rules (pm-serve links no polars; its modules form no import cycle)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@if $(CARGO) tree --locked -p pm-serve -e normal --prefix none | grep -q '^polars'; then \
	  echo "architecture: pm-serve must not depend on polars"; exit 1; fi
	$(CARGO) test --locked -q -p pm-serve --lib layering

fmt: ## Format the code
	$(CARGO) fmt --all

FUZZ_SECS ?= 600
fuzz: ## Fuzz the CSV reader, the pipeline validator and pm-serve's request readers (cargo-fuzz), FUZZ_SECS each (default 600)
	scripts/fuzz.sh $(FUZZ_SECS)

vertex-simulate: build ## The main job: generate the default data into ./local-bucket, run pipelines/training.yaml locally (each step a process), write the KFP/Vertex specs next to the run. CONTAINERS=1: every step in its image, artifacts on a local S3 server, then pm-serve's image answers
ifeq ($(CONTAINERS),1)
	local-sim/containers.sh
else
	local-sim/vertex-simulate.sh "$(BUCKET)"
endif

monitor-simulate: build ## After vertex-simulate: a January-2016 batch with every voltage 15 % higher into ./local-bucket/batch, then pipelines/monitoring.yaml (drift report; the alert retrains)
	./target/debug/pm-datagen --hours 720 --start "2016-01-01 06:00:00" --sensor-scale volt=1.15 --output-uri "$(BUCKET)/batch"
	./target/debug/pm-orchestrator run pipelines/monitoring.yaml --root "$(BUCKET)" \
	  --param "batch_uri=$(BUCKET)/batch" --param "data_uri=$(BUCKET)/raw" --param "registry_uri=$(BUCKET)/registry" --param "pipeline_root=$(BUCKET)"

images: ## Build the OCI images of every step, the pm-pipeline job and pm-serve with podman (hadolint first)
	scripts/images.sh

push-images: ## Push the images to REGISTRY (e.g. europe-west4-docker.pkg.dev/PROJECT/REPO) for Vertex AI / Kubeflow; then compile/submit with --image-registry REGISTRY
	scripts/push-images.sh "$(REGISTRY)"

test-containers: ## The pipelines with every step in its image on a real S3 server, pm-serve's image answering, monitoring + retraining; checked
	local-sim/containers.sh

serve: build ## Serve the model promoted by `make vertex-simulate` on :8080 (state primed from ./local-bucket/raw)
	./target/debug/pm-serve --registry-uri "$(BUCKET)/registry" --prime-from "$(BUCKET)/raw"

compile-specs: build ## Compile every pipeline in pipelines/ to Kubeflow v2 and Vertex AI specs (pipelines/compiled/)
	@for f in pipelines/*.yaml; do n=$$(basename $$f .yaml); \
	  ./target/debug/pm-orchestrator compile $$f --target kfp -o pipelines/compiled/$$n.kfp.json && \
	  ./target/debug/pm-orchestrator compile $$f --target vertex -o pipelines/compiled/$$n.vertex.json && echo "compiled $$f"; done

datagen: build ## Generate the default data set into ./local-bucket/raw and compare it with the real data's facts
	./target/debug/pm-datagen --output-uri "$(BUCKET)/raw" --stats

bench: bench-features bench-train bench-serve ## All three benchmarks below, one after the other (each prints its numbers and ratios)

bench-train: ## Benchmark training against scikit-learn RandomForest and LightGBM (same features, same split)
	scripts/bench-train.sh

bench-serve: ## Benchmark pm-serve (serving profile: release + LTO) with wrk against a bare axum handler, alternately: /predict stateful, with a reading, and window; /predict/batch; c=1 and c=32; a busy-handler yardstick and the window request's isolated cost
	scripts/bench-serve.sh

bench-features: ## Benchmark ingest + features on the full default data, against the seed's pandas code; the same data made messy (read cost, pipeline ROC AUC)
	scripts/bench-features.sh

clean: ## Remove build outputs and the local bucket
	$(CARGO) clean
	rm -rf "$(BUCKET)"

test-real-data: ## Tests against the real event files: make test-real-data PM_REAL_DATA_DIR=/path/to/azure-pdm
	@test -n "$(PM_REAL_DATA_DIR)" || { echo "set PM_REAL_DATA_DIR to the folder of the real PdM_*.csv files"; exit 2; }
	PM_REAL_DATA_DIR="$(PM_REAL_DATA_DIR)" $(CARGO) test --locked -p pm-local-sim --features real-data --test real_data
