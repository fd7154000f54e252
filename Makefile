# wstap: the two entry points of the README.
#   make demo   installs what is missing, builds, and decodes a bundled capture
#   make test   installs what is missing, then runs every test (unit, golden, CLI, conformance)
SWIFT ?= swift
CONFORMANCE ?= ../shared/conformance

.PHONY: demo test deps build release unit cli fuzz libfuzzer memory hostile live conformance bench

deps:
	@bash scripts/install-deps.sh

release: deps
	$(SWIFT) build -c release

demo: release
	.build/release/wstap read captures/fragmented.pcap

unit: deps
	$(SWIFT) test

# The debug build has bounds and exclusivity checks: mutated captures must not trip them.
fuzz: unit
	python3 Tests/fuzz.py .build/debug/wstap

# Coverage-guided fuzzing (libFuzzer + AddressSanitizer), a few seconds per target; longer runs:
# python3 fuzz/run.py --seconds 1800 --runs 10000000 (docs/fuzzing.md).
libfuzzer: deps
	python3 fuzz/run.py --seconds 5

cli: release
	bash Tests/cli.sh .build/release/wstap

live: release
	python3 Tests/live.py .build/release/wstap

memory: release
	python3 Tests/memory.py .build/release/wstap

# Captures built to hurt (issue 14): linear time, bounded memory, no crash.
hostile: release
	python3 Tests/hostile.py .build/release/wstap

conformance: release
	@if [ -d "$(CONFORMANCE)/captures" ]; then \
		python3 $(CONFORMANCE)/check.py --keylog-arg=--keylog --wstap .build/release/wstap $(CONFORMANCE)/captures \
			$$([ -d "$(CONFORMANCE)/tls" ] && echo "$(CONFORMANCE)/tls"); \
	else echo "no $(CONFORMANCE): conformance check skipped"; fi

test: unit fuzz libfuzzer cli memory hostile live conformance

# The benchmark (not part of CI): about 15 minutes; needs tshark.
bench: release
	@command -v tshark >/dev/null || (sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq tshark >/dev/null)
	python3 bench/run.py
