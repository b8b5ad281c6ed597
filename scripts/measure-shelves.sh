#!/usr/bin/env bash
# Matching recall of real-shelf crops, measured on synthetic shelves: 24
# sample products (every kind of scene in turn, seeds 300-323) processed into
# a directory of their own, 8 shelf photos of their frames (`buybuddy shelf
# sample`, seed 11) uploaded with their YOLO labels, every crop matched with
# the classic descriptor; then the tiny preset trained from scratch on 80 % of
# the products (30 epochs), made the search model, and the crops matched again;
# then the same training with the confirmed real crops of the first four
# photos added (`--real train,val`), and the last four photos' crops matched
# with it. Prints sql/shelf_matching.sql, and the figures of the last four
# photos split by whether the crop's product was trained on. Runs in a data folder and a cluster of its own
# (.data/measure-shelves, port 54339), so the embedded default is untouched;
# delete the folder to measure again from scratch. Needs `scripts/run.sh`'s
# set-up and release build first.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

export BUYBUDDY_DATA_DIR="$REPO_ROOT/.data/measure-shelves" BUYBUDDY_PG_PORT=54339 RUST_LOG=warn
bin="$REPO_ROOT/target/release/buybuddy"
[ -x "$bin" ] || die "build the binary first: scripts/run.sh (or cargo build --release)"
videos="$BUYBUDDY_DATA_DIR/videos"
mkdir -p "$videos"

step "A cluster and a worker of its own"
"$bin" db start
"$bin" migrate
"$bin" worker >"$BUYBUDDY_DATA_DIR/worker.log" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT
sql() { psql -X "$("$bin" db url)" "$@"; }

step "24 sample products"
kinds=(table can bottle pouch shadow plain)
for n in $(seq 0 23); do
	barcode=$(printf '7700000000%03d' "$n")
	[ "$(sql -tA -c "SELECT count(*) FROM products WHERE barcode = '$barcode'")" = 0 ] || continue
	video="$videos/$n.mp4"
	[ -f "$video" ] || "$bin" sample-video --out "$video" --seed $((300 + n)) --frames 48 --kind "${kinds[$((n % 6))]}" >/dev/null
	"$bin" process "$video" --barcode "$barcode" >/dev/null
done
info "$(sql -tA -c 'SELECT count(*) FROM products') products"

step "8 synthetic shelf photos, matched with the classic descriptor"
if [ "$(sql -tA -c 'SELECT count(*) FROM shelf_images')" = 0 ]; then
	"$bin" shelf sample --out "$BUYBUDDY_DATA_DIR/shelves" --photos 8 --per-photo 8 --seed 11 >/dev/null
	"$bin" shelf upload "$BUYBUDDY_DATA_DIR"/shelves/*.jpg "$BUYBUDDY_DATA_DIR"/shelves/*.txt "$BUYBUDDY_DATA_DIR/shelves/data.yaml" >/dev/null
fi
"$bin" shelf match --wait >/dev/null 2>&1 || true

step "The tiny preset trained on 80 % of the products, then the crops matched again"
if ! "$bin" dataset show measure >/dev/null 2>&1; then
	"$bin" dataset create measure --task recognition --status needs_review --status approved \
		--split 0.8,0.2,0 --copies 2 --seed 5 >/dev/null
	"$bin" dataset version measure --wait >/dev/null 2>&1
fi
if [ "$(sql -tA -c "SELECT count(*) FROM embedding_models WHERE kind = 'dinov2'")" = 0 ]; then
	"$bin" train start measure --epochs 30 --seed 3 --wait >"$BUYBUDDY_DATA_DIR/train.json" 2>"$BUYBUDDY_DATA_DIR/train.log"
	"$bin" train use "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["run"])' <"$BUYBUDDY_DATA_DIR/train.json")"
fi
for _ in $(seq 1 600); do
	"$bin" models list | python3 -c 'import json,sys; sys.exit(0 if any(m["serving"] and m["kind"] == "dinov2" for m in json.load(sys.stdin)) else 1)' && break
	sleep 1
done
"$bin" shelf match --wait >/dev/null 2>&1 || true

step "The crops of the first four photos confirmed, and trained on"
# As a person would confirm them: each as the product its label names.
for image in 1 2 3 4; do
	"$bin" shelf show "$image" | python3 -c 'import json,sys; print("\n".join("%s %s" % (b["id"], b["label"]) for b in json.load(sys.stdin)["boxes"] if b["status"] != "confirmed"))' |
		while read -r box label; do "$bin" shelf review "$box" confirm --product "$label" >/dev/null; done
done
if ! "$bin" dataset show measure-real >/dev/null 2>&1; then
	"$bin" dataset create measure-real --task recognition --status needs_review --status approved \
		--split 0.8,0.2,0 --copies 2 --seed 5 --real train,val >/dev/null
	"$bin" dataset version measure-real --wait >/dev/null 2>&1
fi
if [ "$(sql -tA -c "SELECT count(*) FROM embedding_models WHERE kind = 'dinov2'")" = 1 ]; then
	"$bin" train start measure-real --epochs 30 --seed 3 --wait >"$BUYBUDDY_DATA_DIR/train-real.json" 2>"$BUYBUDDY_DATA_DIR/train-real.log"
	"$bin" train use "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["run"])' <"$BUYBUDDY_DATA_DIR/train-real.json")"
fi
for _ in $(seq 1 600); do
	"$bin" models list | python3 -c 'import json,sys; sys.exit(0 if any(m["serving"] and m["name"] == "train-2" for m in json.load(sys.stdin)) else 1)' && break
	sleep 1
done
"$bin" shelf match 5 6 7 8 --wait >/dev/null 2>&1 || true

step "Recall of the crops against the barcodes their labels name"
sql -f sql/shelf_matching.sql
sql <<'EOF'
-- The last four photos (never confirmed, never trained on), split by whether
-- the crop's product was in the training split.
WITH trained AS (
    SELECT DISTINCT (i.sources -> 0 ->> 'product_id')::uuid AS product_id
    FROM dataset_items i
    JOIN dataset_versions v ON v.id = i.version_id
    JOIN datasets d ON d.id = v.dataset_id
    WHERE d.name = 'measure' AND i.split = 'train'
)
SELECT m.name AS model,
       p.id IN (SELECT product_id FROM trained) AS trained_on,
       count(*) AS crops,
       round(avg((top.product_id = p.id)::int), 3) AS recall_at_1,
       round(avg((EXISTS (SELECT 1 FROM shelf_suggestions s
                          WHERE s.box_id = b.id AND s.model_id = c.model_id
                            AND s.product_id = p.id))::int), 3) AS recall_at_5,
       round(avg((c.gallery_product_id IS NOT DISTINCT FROM p.id)::int), 3) AS gallery_recall_at_1
FROM shelf_boxes b
JOIN products p ON p.barcode = b.label
JOIN shelf_crop_matches c ON c.box_id = b.id
JOIN embedding_models m ON m.id = c.model_id
LEFT JOIN shelf_suggestions top ON top.box_id = b.id AND top.model_id = c.model_id AND top.rank = 1
WHERE b.image_id > 4
GROUP BY 1, 2
ORDER BY 1, 2;
EOF
