#!/usr/bin/env bash
# Regenerates .sqlx/, the query descriptions that let the compile-time checked
# queries build without a database (CI builds with SQLX_OFFLINE=true). Run it
# after changing a query or a migration, and commit the result.
#
# It migrates a scratch database in the embedded cluster with psql (the queue's
# migrations, then ours) and compiles every target against it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

step "Embedded cluster"
# Read the cluster's address from its files: the binary itself may not build
# until this script has run.
data_dir=${BUYBUDDY_DATA_DIR:-.data}
port=${BUYBUDDY_PG_PORT:-54329}
[ -f "$data_dir/postgres.password" ] || die "no embedded cluster in $data_dir: run \`buybuddy db start\` once"
admin="postgres://buybuddy:$(cat "$data_dir/postgres.password")@127.0.0.1:$port/postgres"
if ! psql -q "$admin" -c 'SELECT 1' >/dev/null 2>&1; then
	[ -x target/debug/buybuddy ] || die "the embedded cluster is not running: start it with \`buybuddy db start\`"
	target/debug/buybuddy db start
fi
url=${admin%/*}/buybuddy
db=buybuddy_sqlx_prepare
scratch=${url%/*}/$db
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"

step "Migrating $db with psql"
apalis_dir=$(cargo metadata --format-version 1 | python3 -c '
import json, sys, os
meta = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in meta["packages"] if p["name"] == "apalis-postgres"))')
for file in "$apalis_dir"/migrations/*.sql migrations/*.sql; do
	psql -q -v ON_ERROR_STOP=1 "$scratch" -f "$file" >/dev/null 2>&1 || die "applying $file failed"
done
info "applied $(ls "$apalis_dir"/migrations/*.sql | wc -l) queue and $(ls migrations/*.sql | wc -l) platform migrations"

step "Describing the queries"
rm -rf .sqlx && mkdir .sqlx
touch src/lib.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$REPO_ROOT/.sqlx" DATABASE_URL="$scratch" cargo check -q --all-targets
info "$(ls .sqlx | wc -l) queries described in .sqlx/"
psql -q "$admin" -c "DROP DATABASE $db WITH (FORCE)"
