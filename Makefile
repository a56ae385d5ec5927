# gracetls: `make demo` and `make test` are all a fresh machine needs.
CARGO ?= cargo
# The build needs the first line; the test peers and fault tools the rest
# (see README, "Testing").
APT_PACKAGES := openssl libssl-dev pkg-config python3 \
	nginx libnginx-mod-stream gnutls-bin openjdk-17-jdk-headless golang-go \
	nftables iproute2 socat ncat gcc

.PHONY: all build demo test interop test-faults lint doc ci deps clean

all: build

## deps: install the system packages the build and the tests need (Debian; root or sudo)
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

build: deps
	$(CARGO) build --bin gracetls --examples

## demo: the client against the bundled demo server, both exit scenarios of the reference problem
demo: build
	bash examples/demo.sh target/debug

## test: every unit, doc and integration test (real openssl s_server and Python ssl peers)
test: deps
	$(CARGO) test

## interop: the interop matrix (every exit path x every peer); prints the
## table and updates docs/INTEROP.md, also when a cell failed
interop: deps
	rm -rf target/tmp/interop
	$(CARGO) test --test interop -- --test-threads=2; status=$$?; \
	python3 tests/interop_table.py target/tmp/interop --write docs/INTEROP.md; exit $$status

## test-faults: every exit path under 5% TCP loss (network namespace, needs root) and 100 ms delay (proxy)
test-faults: deps
	$(CARGO) test --test faults -- --nocapture

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

## ci: what .ci/run runs
ci: deps lint doc test

clean:
	$(CARGO) clean
