# pg_nango: `make demo` runs the demo, `make test` runs every test. Both install what they need first.
PG_CONFIG := /usr/lib/postgresql/15/bin/pg_config
DEMO_DIR  ?= $(CURDIR)/target/demo
# Installing writes PostgreSQL's root-owned directories: as another user, through sudo.
SUDO_FLAG := $(shell [ "$$(id -u)" = 0 ] || echo --sudo)
SUDO      := $(if $(SUDO_FLAG),sudo )
EXTDIR     = $(shell $(PG_CONFIG) --sharedir)/extension

.PHONY: setup install cli demo demo-stop test unit pgtest e2e lint bench package package-check

setup:
	@bash scripts/setup.sh

install: setup
	cargo pgrx install --release --pg-config $(PG_CONFIG) $(SUDO_FLAG)
	# Earlier releases' install scripts (CREATE EXTENSION … VERSION); the upgrade scripts come with pgrx's.
	$(SUDO)install -m 0644 sql/releases/*.sql $(EXTDIR)/

# The pg-nango client, installed beside psql.
cli: setup
	cargo build --release -p pg_nango_cli
	$(SUDO)install -m 0755 target/release/pg-nango /usr/local/bin/pg-nango

demo: install cli
	cargo build --release -p pg_nango_mock_api
	@bash scripts/demo.sh "$(DEMO_DIR)"

demo-stop:
	@bash scripts/demo.sh --stop "$(DEMO_DIR)"

unit: setup
	bash scripts/fetch-npm.sh @nangohq/providers
	# One test at a time: the sandbox forks, and a fork while another test thread holds a lock leaves the
	# child stuck until its deadline (a Postgres backend, the real caller, is single-threaded then).
	cargo test --release -p pg_nango_core -- --test-threads=1

# The #[pg_test]s (cargo pgrx test): SQL functions that need no background worker.
pgtest: setup
	@bash scripts/pg-test.sh

e2e: install
	cargo test --release -p pg_nango_e2e -p pg_nango_cli

test: unit pgtest e2e

# target/postgresql-15-pg-nango_<version>_<arch>.deb
package: setup
	@bash scripts/package.sh

# Installs that package with apt (replacing a `make install`) and checks it on a new cluster.
package-check: setup
	@bash scripts/package-check.sh

bench: install
	cargo run --release -p pg_nango_bench -- $(ARGS)

lint: setup
	@cargo clippy --version >/dev/null 2>&1 && cargo fmt --version >/dev/null 2>&1 || rustup component add clippy rustfmt
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -p pg_nango_core -p pg_nango_cli -p pg_nango_mock_api -p pg_nango_e2e -p pg_nango_bench -- -D warnings
	cargo clippy --release -p pg_nango -- -D warnings
	cargo clippy --release -p pg_nango --features pg_test --tests -- -D warnings
