# gracetls: `make demo` and `make test` are all a fresh machine needs.
CARGO ?= cargo
# What the build and `make demo` need (OpenSSL's headers, a C compiler and linker with libc's
# headers; the openssl command is the demo's server); a Rust toolchain (rustup) is assumed.
# `make demo` and `make install` install only these, without Recommends (gcc's would bring
# libgd and a dozen image libraries).
BUILD_PACKAGES := libssl-dev pkg-config gcc libc6-dev openssl
# What the tests need on top: the test peers and fault tools (see docs/testing.md).
# A new test peer's package goes here.
APT_PACKAGES := openssl python3 \
	nginx libnginx-mod-stream gnutls-bin openjdk-17-jdk-headless golang-go \
	nftables iproute2 socat ncat stunnel4 curl gcc tinyproxy microsocks \
	postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd postgresql vsftpd prosody \
	man-db groff-base zsh fish
# What `make bench` needs on top of the tests' packages: its timers and its plotter (whose
# Recommends bring groff, ghostscript and ImageMagick).
BENCH_PACKAGES := hyperfine time gnuplot-nox

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
# The files `make install` places, from `gracetls --generate KIND` where a KIND is given.
INSTALL_BIN := $(DESTDIR)$(BINDIR)/gracetls
INSTALL_MAN := $(DESTDIR)$(MANDIR)/man1/gracetls.1
INSTALL_BASH := $(DESTDIR)$(DATADIR)/bash-completion/completions/gracetls
INSTALL_ZSH := $(DESTDIR)$(DATADIR)/zsh/site-functions/_gracetls
INSTALL_FISH := $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/gracetls.fish

.PHONY: all build demo test interop server-goodbye test-faults fanout figures stress soak bench lint doc ci deps build-deps bench-deps packages install install-files uninstall clean fuzz fuzz-ci fuzz-deps api-diff

all: build

# What `make deps` could not install, and why (a package and the reason a line); the tests
# that need such a package say SKIP with that reason (tests/common/skip.rs reads this path).
NOT_INSTALLED := target/not-installed.txt
# Every test that skips appends a line here; `make test` ends with a summary of them.
SKIP_LOG := target/skips.log

# Installs the Debian packages named in $(1) that are missing (root or sudo), with the
# apt-get options in $(2). It never removes a package and leaves the daemons it installs
# stopped; a package that conflicts with one installed is left out (see tools/apt-install).
define apt_install
	@bash tools/apt-install $(NOT_INSTALLED) $(2) -- $(1)
endef

# Runs the test command $(1) with skips recorded, then prints how many tests skipped and why;
# the exit status is the command's.
define with_skip_summary
	@mkdir -p $(dir $(SKIP_LOG)) && rm -f $(SKIP_LOG)
	GRACETLS_SKIP_LOG=$(abspath $(SKIP_LOG)) $(1); status=$$?; \
	python3 tests/skip_summary.py $(SKIP_LOG) $$status; exit $$status
endef

## build-deps: install the system packages the build and the demo need (Debian; root or sudo)
build-deps:
	$(call apt_install,$(BUILD_PACKAGES),--no-install-recommends)

## deps: install the system packages the build and the tests need (Debian; root or sudo);
## removes none, starts no daemon; what it could not install is in target/not-installed.txt
deps:
	$(call apt_install,$(sort $(BUILD_PACKAGES) $(APT_PACKAGES)))

bench-deps:
	$(call apt_install,$(sort $(BUILD_PACKAGES) $(APT_PACKAGES) $(BENCH_PACKAGES)))

## packages: the package lists (what `make demo` installs, what `make test` adds, what
## `make bench` adds)
packages:
	@echo "build: $(BUILD_PACKAGES)"
	@echo "test: $(APT_PACKAGES)"
	@echo "bench: $(BENCH_PACKAGES)"

## build: the command, target/debug/gracetls
build: build-deps
	$(CARGO) build --bin gracetls

## demo: the reference problem played against `openssl s_server`, whose log gives the verdicts;
## builds the command alone with the quick `demo` profile (Cargo.toml), into target/demo
demo: build-deps
	$(CARGO) build --profile demo --bin gracetls
	bash examples/demo.sh $${CARGO_TARGET_DIR:-target}/demo/gracetls

## test: every unit, doc and integration test (real openssl s_server and Python ssl peers),
## then how many tests skipped and why. TEST_ARGS: more for cargo test (`--test faults`)
TEST_ARGS ?=
test: deps
	$(call with_skip_summary,$(CARGO) test $(TEST_ARGS))

## interop: the interop matrix (every exit path x every peer); prints the
## table and updates docs/INTEROP.md, also when a cell failed
interop: deps
	rm -rf target/tmp/interop $(SKIP_LOG)
	GRACETLS_SKIP_LOG=$(abspath $(SKIP_LOG)) $(CARGO) test --test interop -- --test-threads=2; status=$$?; \
	python3 tests/interop_table.py target/tmp/interop --write docs/INTEROP.md; \
	python3 tests/skip_summary.py $(SKIP_LOG) $$status; exit $$status

## server-goodbye: what a client sees when a TLS server gets SIGTERM or SIGINT: ncat, s_server,
## stunnel, socat and gracetls --listen, each against every referee client (tests/referees/);
## prints the table and updates docs/servers.md
server-goodbye: deps
	$(CARGO) build --bin gracetls --example referee_rustls
	python3 tools/server-goodbye --write docs/servers.md

## test-faults: every exit path under 5% TCP loss (network namespace, needs root) and 100 ms delay (proxy)
test-faults: deps
	$(call with_skip_summary,$(CARGO) test --test faults -- --nocapture)

## fanout: N (default 10000) connections to a local server (tests/peers/fanout_server.py),
## idle IDLE seconds, closed gracefully, once per mode in FANOUT_MODES: `stream` (no thread
## per connection, all closed from one thread), `connection` (one reader thread each),
## `native` (plain native-tls streams, the yardstick for memory) and `native-thread` (each
## native-tls stream owned by a thread blocked in read, closed with the shutdown(Read)
## recipe: the yardstick for a `Connection`);
## each run's last line is key=value (see docs/library.md, "Many connections"). No mode needs
## vm.max_map_count raised at N=10000 (a Connection's thread takes 4 mappings: about 16,000
## fit under the default 65,530); fanout says what to raise when N needs it.
## FANOUT_SERVER_ARGS=--no-answer: the server closes TCP after a client's close_notify without
## answering it, as nginx does, so each close asks the kernel whether its close_notify arrived.
N ?= 10000
IDLE ?= 10
FANOUT_MODES ?= stream connection native native-thread
FANOUT_SERVER_ARGS ?=
fanout: deps
	$(CARGO) build --release --example fanout
	@dir=$$(mktemp -d); \
	python3 tests/peers/fanout_server.py $(FANOUT_SERVER_ARGS) --certs-dir $$dir --ready-file $$dir/ready > $$dir/server.log 2>&1 & pid=$$!; \
	for i in $$(seq 100); do [ -s $$dir/ready ] && break; sleep 0.1; done; \
	read port stats < $$dir/ready; status=0; \
	for mode in $(FANOUT_MODES); do \
		echo "fanout: load average $$(cut -d' ' -f1-3 /proc/loadavg) before --mode $$mode"; \
		target/release/examples/fanout --mode $$mode --ca-file $$dir/ca.pem \
			--server-stats 127.0.0.1:$$stats --idle $(IDLE)s 127.0.0.1:$$port $(N) || status=1; \
	done; \
	kill $$pid; wait $$pid; grep SUMMARY $$dir/server.log; rm -rf $$dir; exit $$status

## figures: the hostile-server figures at full size in release mode (20 MiB as 1-byte
## records, 200,000 KeyUpdates during a 100 MiB upload, 1,500 renegotiations, garbage);
## docs/robustness.md quotes the FIGURE lines. `make test` runs the same tests small.
figures: deps
	GRACETLS_FIGURES=full $(CARGO) test --release --test figures -- --nocapture --test-threads=1

## stress: the KeyUpdate deadlock settings (one writer and one reader, 16 KiB buffers, a
## KeyUpdate every 64 KiB; five writers, one every MiB) 200 runs each, and a fast close under
## 5% loss 100 runs, clean only where openssl s_server logged our close_notify (needs root)
stress: deps
	GRACETLS_KEY_UPDATE_RUNS=200 $(CARGO) test --test guarantee key_updates -- --test-threads=1
	GRACETLS_LOSS_RUNS=100 $(CARGO) test --test faults loss_fast_close -- --nocapture

## soak: 100,000 connect/send/close cycles in release mode; fds, threads and RSS must not grow
soak: deps
	GRACETLS_SOAK_CYCLES=100000 $(CARGO) test --release --test soak -- --nocapture

# The library's code for systems where native-tls is not OpenSSL (Windows, Apple's), which
# this machine cannot run, is at least compiled and linted for them.
LINT_TARGETS := x86_64-pc-windows-gnu x86_64-apple-darwin

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --no-default-features -- -D warnings
	@if ! command -v rustup >/dev/null 2>&1; then \
		echo "SKIP lint for $(LINT_TARGETS): rustup not found, so their standard libraries cannot be added"; \
	elif ! rustup target add $(LINT_TARGETS); then \
		echo "SKIP lint for $(LINT_TARGETS): rustup could not add their standard libraries (see above)"; \
	else \
		for t in $(LINT_TARGETS); do \
			echo "clippy --lib --target $$t"; \
			$(CARGO) clippy --lib --target $$t -- -D warnings || exit 1; \
		done; \
	fi

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

## api-diff: the library's public items removed (-) and added (+) since BASE (a commit; default
## the last change of CHANGELOG's release heading), from rustdoc's JSON (nightly toolchain):
## every `-` line is a breaking change CHANGELOG must list
BASE ?= $(shell git log -1 --format=%H -G'^## \[[0-9]' -- CHANGELOG.md 2>/dev/null)
api-diff:
	@test -n "$(BASE)" || { echo "api-diff: no release in CHANGELOG yet; say BASE=<commit>"; exit 2; }
	rm -rf target/api-diff/base && git worktree add --detach -f target/api-diff/base $(BASE)
	cd target/api-diff/base && $(CARGO) +nightly rustdoc --lib -q --target-dir ../target -- -Z unstable-options --output-format json
	cp target/api-diff/target/doc/gracetls.json target/api-diff/base.json
	git worktree remove --force target/api-diff/base
	$(CARGO) +nightly rustdoc --lib -q --target-dir target/api-diff/target -- -Z unstable-options --output-format json
	python3 tools/api_items.py target/api-diff/base.json target/api-diff/target/doc/gracetls.json

## fuzz: each libFuzzer target (fuzz/fuzz_targets) for FUZZ_SECONDS, growing fuzz/corpus;
## anything found is left in fuzz/artifacts/TARGET. Needs the nightly toolchain and cargo-fuzz.
## FUZZ_CORPUS=scratch (what fuzz-ci passes) reads the committed corpus but writes what it finds
## to a scratch copy under fuzz/target, so the run leaves `git status` as it was.
FUZZ_SECONDS ?= 600
FUZZ_CORPUS ?= grow
FUZZ_TARGETS := transport target lines duration pem proxy starttls tunnel
FUZZ_BIN = fuzz/target/$(shell rustc -vV | sed -n "s/^host: //p")/release
fuzz: fuzz-deps
	@# Built first, with the environment as it is: cargo may have to download the fuzz crates,
	@# and SSL_CERT_FILE=/dev/null below would blind its TLS too.
	cd fuzz && $(CARGO) +nightly fuzz build
	@# A stale fuzz/Cargo.lock (the crate gained a dependency) is rewritten by that build: CI
	@# says so rather than leave the checkout changed.
	@if [ "$(FUZZ_CORPUS)" = scratch ] && git rev-parse --git-dir >/dev/null 2>&1 && \
		! git diff --quiet -- fuzz/Cargo.lock; then \
		echo "fuzz: fuzz/Cargo.lock was out of date and cargo rewrote it; commit it"; exit 1; fi
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		if [ "$(FUZZ_CORPUS)" = scratch ]; then \
			dirs="fuzz/target/corpus-scratch/$$t fuzz/corpus/$$t"; rm -rf fuzz/target/corpus-scratch/$$t; \
		else dirs="fuzz/corpus/$$t"; fi; \
		mkdir -p $$dirs fuzz/artifacts/$$t; \
		SSL_CERT_FILE=/dev/null $(FUZZ_BIN)/$$t -artifact_prefix=fuzz/artifacts/$$t/ $$dirs \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

## fuzz-ci: the short pass CI runs: every target over the committed corpus, then 15 s more,
## leaving the committed corpus untouched
fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=15 FUZZ_CORPUS=scratch

fuzz-deps:
	@$(CARGO) +nightly --version >/dev/null 2>&1 || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)"; exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

## ci: what .ci/run runs
ci: deps lint doc fuzz-ci test

## bench: gracetls against s_client, socat, gnutls-cli and ncat on one server and cipher,
## plus the in-process criterion comparison; writes docs/benchmarks.md and docs/bench.png.
## Not part of test. Smaller: make bench BENCH_MIB=256 BENCH_RUNS=3
BENCH_MIB ?= 1024
BENCH_RUNS ?= 5
bench: bench-deps
	$(CARGO) build --release --bin gracetls --example bench_server
	python3 bench/run --mib $(BENCH_MIB) --runs $(BENCH_RUNS)
	$(CARGO) bench --bench transport
	python3 bench/report

## install: the release binary, its man page and its bash, zsh and fish completions under
## $(DESTDIR)$(PREFIX) (PREFIX=/usr/local by default); `make uninstall` removes them
install: build-deps
	$(CARGO) build --release --bin gracetls
	$(MAKE) install-files BIN=target/release/gracetls

## install-files: what install places, from an already built BIN (no build, no apt)
BIN ?= target/release/gracetls
install-files:
	install -D -m 755 $(BIN) $(INSTALL_BIN)
	install -d $(dir $(INSTALL_MAN)) $(dir $(INSTALL_BASH)) $(dir $(INSTALL_ZSH)) $(dir $(INSTALL_FISH))
	$(BIN) --generate man > $(INSTALL_MAN)
	$(BIN) --generate bash > $(INSTALL_BASH)
	$(BIN) --generate zsh > $(INSTALL_ZSH)
	$(BIN) --generate fish > $(INSTALL_FISH)
	chmod 644 $(INSTALL_MAN) $(INSTALL_BASH) $(INSTALL_ZSH) $(INSTALL_FISH)

uninstall:
	rm -f $(INSTALL_BIN) $(INSTALL_MAN) $(INSTALL_BASH) $(INSTALL_ZSH) $(INSTALL_FISH)

clean:
	$(CARGO) clean
