# wstap: the two entry points of the README.
#   make demo   installs what is missing, builds, and decodes a bundled capture
#   make test   installs what is missing, then runs every test (unit, golden, CLI, conformance)
SWIFT ?= swift
CONFORMANCE ?= ../shared/conformance
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: demo test deps build release unit cli outputs html numbers fuzz libfuzzer memory hostile live conformance bench bench-quick install uninstall installcheck scale

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
	python3 Tests/fuzz.py .build/debug/wstap --jobs 2

# Coverage-guided fuzzing (libFuzzer + AddressSanitizer), a few seconds per target of a debug build
# (it builds in half the time of the release build); longer runs, release:
# python3 fuzz/run.py --seconds 1800 --runs 10000000 (docs/fuzzing.md).
libfuzzer: deps
	python3 fuzz/run.py --seconds 5 --jobs 2 --debug

cli: release
	bash Tests/cli.sh .build/release/wstap

# Every output of every format on every bundled, damaged and conformance capture, against the
# recorded digests (RECORD=1 records them again after a change meant to alter outputs).
outputs: release
	bash Tests/outputs.sh .build/release/wstap

live: release
	python3 Tests/live.py .build/release/wstap

memory: release
	python3 Tests/memory.py .build/release/wstap

# Captures built to hurt (issue 14): linear time, bounded memory, no crash.
hostile: release
	python3 Tests/hostile.py .build/release/wstap

# The HTML report rendered in headless Chromium with crafted payloads, and the HAR read back by
# a third-party HAR parser (issue 16).
html: release
	@bash scripts/install-deps.sh --test
	python3 Tests/html_report.py .build/release/wstap
	python3 Tests/har_viewer.py .build/release/wstap

# Packet numbers against Wireshark's frame numbers (tshark).
numbers: release
	@bash scripts/install-deps.sh --test
	python3 Tests/packet_numbers.py .build/release/wstap

conformance: release
	@if [ -d "$(CONFORMANCE)/captures" ]; then \
		python3 $(CONFORMANCE)/check.py --keylog-arg=--keylog --wstap .build/release/wstap $(CONFORMANCE)/captures \
			$$([ -d "$(CONFORMANCE)/tls" ] && echo "$(CONFORMANCE)/tls") $$([ -d "$(CONFORMANCE)/round3" ] && echo "$(CONFORMANCE)/round3"); \
	else echo "no $(CONFORMANCE): conformance check skipped"; fi

# The test-only packages (chromium, tshark) install in the background while the builds run; the
# steps that need them wait for it (scripts/install-deps.sh takes a lock).
test: deps
	@(bash scripts/install-deps.sh --test >"$${TMPDIR:-/tmp}/wstap-test-deps.log" 2>&1 &)
	@$(MAKE) --no-print-directory unit fuzz libfuzzer cli outputs html numbers installcheck memory hostile live conformance

# The binary, a man page generated from the same help text (swift-argument-parser's
# generate-manual plugin), and bash/zsh/fish completions: make install [PREFIX=...] [DESTDIR=...].
install: release
	@mkdir -p .build/man
	$(SWIFT) package --allow-writing-to-directory .build/man generate-manual --output-directory .build/man >/dev/null
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 .build/release/wstap $(DESTDIR)$(PREFIX)/bin/wstap
	install -m 644 .build/man/wstap.1 $(DESTDIR)$(PREFIX)/share/man/man1/wstap.1
	.build/release/wstap --generate-completion-script bash >$(DESTDIR)$(PREFIX)/share/bash-completion/completions/wstap
	.build/release/wstap --generate-completion-script zsh >$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_wstap
	.build/release/wstap --generate-completion-script fish >$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/wstap.fish

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/wstap $(DESTDIR)$(PREFIX)/share/man/man1/wstap.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/wstap $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_wstap \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/wstap.fish

# make install into a scratch directory: every file in place, the man page renders and names
# every subcommand, the bash completion parses and completes the subcommands.
installcheck: release
	@set -e; root=$$(mktemp -d); trap 'rm -rf "$$root"' EXIT; \
	$(MAKE) --no-print-directory install DESTDIR=$$root PREFIX=/usr >/dev/null; \
	test -x $$root/usr/bin/wstap; $$root/usr/bin/wstap --version >/dev/null; \
	for sub in read sniff stats follow interfaces; do \
		grep -q "^\.It Cm $$sub\|$$sub" $$root/usr/share/man/man1/wstap.1 || { echo "man page lacks $$sub"; exit 1; }; done; \
	grep -q -- '-write-messages' $$root/usr/share/man/man1/wstap.1; \
	bash -n $$root/usr/share/bash-completion/completions/wstap; \
	words=$$(bash -c ". $$root/usr/share/bash-completion/completions/wstap; COMP_WORDS=(wstap ''); COMP_CWORD=1; COMP_LINE='wstap '; COMP_POINT=6; _wstap; echo \$${COMPREPLY[*]}"); \
	for sub in read sniff stats follow; do case " $$words " in *" $$sub "*) ;; *) echo "bash completion lacks $$sub: $$words"; exit 1;; esac; done; \
	test -s $$root/usr/share/zsh/site-functions/_wstap; test -s $$root/usr/share/fish/vendor_completions.d/wstap.fish; \
	echo "installcheck: binary, man page, bash/zsh/fish completions in place"

# wstap over a directory of captures in Apache Spark (local mode) and DuckDB (issue 17; not part
# of make test: it installs a JVM, pyspark and duckdb, and a JVM takes a while to start).
scale: release
	python3 scale/spark_recipe.py .build/release/wstap captures

# The benchmark (not part of CI): about 15 minutes; needs tshark. Then issue 32's table, measured
# interleaved (bench/interleaved.py: every command once per round, rotated; ratios within rounds).
bench: release
	@command -v tshark >/dev/null || (sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq tshark >/dev/null)
	python3 bench/run.py
	python3 bench/interleaved.py

# The interleaved table on small captures, under 3 minutes: for A/B checks of a change
# (BASELINE=path/to/other/wstap adds an interleaved new/old ratio).
bench-quick: release
	@command -v tshark >/dev/null || (sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq tshark >/dev/null)
	python3 bench/interleaved.py --quick $(if $(BASELINE),--baseline $(BASELINE))
