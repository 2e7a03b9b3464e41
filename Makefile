# kvm-wss: build, demo, tests, benchmarks.
# Every target installs what it needs first (libclang for userfaultfd-sys's
# bindgen), so a fresh clone on a fresh machine needs no manual step.

CARGO ?= cargo
BIN := target/release/kvm-wss

.PHONY: all deps build run test lint bench study clean

all: build

# userfaultfd-sys generates its bindings with bindgen, which needs libclang.
deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libclang.*\.so'; then \
		echo "installing libclang-dev (needed by userfaultfd-sys's bindgen)"; \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libclang-dev >/dev/null; \
	fi

build: deps
	$(CARGO) build --release --locked

# A demo: the working set changes size every 5 s; uffd tracking with ESX
# sampling follows it. Output goes to runs/demo.
run: build
	$(BIN) run --guest phases --wss 128M --duration 20s --interval 1s --tracker uffd --sample-pages 400 --out runs/demo

test: deps
	$(CARGO) test --release --locked --workspace

lint: deps
	$(CARGO) fmt --all --check
	cd guest-programs && $(CARGO) fmt --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings
	cd guest-programs && $(CARGO) clippy --release --locked -- -D warnings

# The figures the README quotes, regenerated side by side in one run each.
bench: build
	mkdir -p docs/bench
	$(BIN) bench native > docs/bench/native.json
	cat docs/bench/native.json

# The study (docs/study.md, its figures and data): about 35 minutes of runs.
# Finished runs under docs/study/runs/ are reused, so an interrupted study
# continues; `$(BIN) study --out docs --fresh` measures everything again.
study: build
	$(BIN) study --out docs

clean:
	$(CARGO) clean
