#!/usr/bin/env bash
# Runs every check on a fresh Debian 12 machine: installs what is needed
# (scripts/setup.sh --test), checks formatting and lints, then runs all tests
# against real PostgreSQL (a scratch cluster in .data/postgres-test).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh" --test

# Queries build against the committed .sqlx/ data, never a live database.
export SQLX_OFFLINE=true

step "Formatting"
cargo fmt --all -- --check

step "Lints"
cargo clippy --locked --all-targets -- -D warnings

step "Tests"
if cargo nextest --version >/dev/null 2>&1; then
	profile=default
	[ "${CI:-}" = true ] && profile=ci
	cargo nextest run --locked --workspace --profile "$profile"
	# nextest does not run doctests.
	cargo test --locked --workspace --doc
else
	cargo test --locked --workspace
fi

step "All checks passed"
