#!/usr/bin/env bash
# The main job on the embedded default: installs what is needed, builds, starts
# the embedded PostgreSQL cluster, migrates, then runs the server and one worker
# until Ctrl-C. Safe to run again, also after a reboot.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/setup.sh"

step "Building buybuddy (release)"
cargo build --release --locked --bin buybuddy
bin="$REPO_ROOT/target/release/buybuddy"

step "Database (embedded PostgreSQL cluster in .data/)"
"$bin" db start
"$bin" migrate

step "A user to sign in with"
admin_email=${BUYBUDDY_ADMIN_EMAIL:-admin@localhost}
password_file="$REPO_ROOT/.data/admin-password"
if [ ! -s "$password_file" ]; then
	(umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$password_file")
fi
# Adding again only sets the same password: this also survives a new database.
"$bin" user add "$admin_email" <"$password_file"

step "Checking the installation"
"$bin" doctor

step "Processing a sample product video"
sample="$REPO_ROOT/.data/samples/sample.mp4"
[ -f "$sample" ] || "$bin" sample-video --out "$sample"
"$bin" process "$sample" --barcode 8690000000001 >"$REPO_ROOT/.data/samples/sample.json"
info "product 8690000000001: $(grep -o '"frame_count": [0-9]*' "$REPO_ROOT/.data/samples/sample.json")"
info "embedded: $(python3 -c 'import json,sys; e=json.load(sys.stdin).get("embedding") or {}; print(e.get("frames", 0), "frame vectors and a prototype with", e.get("model", "no model"))' <"$REPO_ROOT/.data/samples/sample.json")"
# Four more: the sample datasets below need a product for each split, and
# training needs at least two products to learn from and two to validate on.
# Each another kind of product, so that they can be told apart.
kinds=(carton carton can bottle pouch table)
for n in 2 3 4 5; do
	more="$REPO_ROOT/.data/samples/sample-$n-${kinds[$n]}.mp4"
	[ -f "$more" ] || "$bin" sample-video --out "$more" --seed $((6 + n)) --frames 48 --kind "${kinds[$n]}"
	"$bin" process "$more" --barcode "869000000000$n" >"$REPO_ROOT/.data/samples/sample-$n.json"
	info "product 869000000000$n: $(grep -o '"frame_count": [0-9]*' "$REPO_ROOT/.data/samples/sample-$n.json")"
done

step "Searching with one of its frames"
frame=$(find "$REPO_ROOT/.data/storage/frames/8690000000001" -name '0000.png' | head -n 1)
if [ -n "$frame" ]; then
	"$bin" search --image "$frame" --k 3 >"$REPO_ROOT/.data/samples/search.json"
	info "$(python3 -c 'import json,sys; a=json.load(sys.stdin); h=a["hits"]; print("nearest:", ", ".join("%s (%.3f)" % (x["product"]["barcode"], x["similarity"]) for x in h) or "nothing", "by", a["model"])' <"$REPO_ROOT/.data/samples/search.json")"
fi

bind=${BUYBUDDY_BIND:-127.0.0.1:8080}
step "Starting the server and a worker"
pids=()
stop() {
	info "stopping"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
"$bin" serve --bind "$bind" &
pids+=($!)
"$bin" worker &
pids+=($!)

# Wait for the server to answer before saying where it is.
for _ in $(seq 1 100); do
	curl -fsS "http://$bind/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
step "A sample dataset from it (rendered and exported by the worker)"
# Made once: the sample products split by product (each in one of train,
# val and test), an augmented draw of every train frame and 4 shelf
# composites; then a COCO archive of it, read back by Python's zipfile.
if ! "$bin" dataset show sample-shelf >/dev/null 2>&1; then
	"$bin" dataset create sample-shelf --task segment --status needs_review --status approved \
		--copies 1 --composites 4 >/dev/null
	"$bin" dataset version sample-shelf --wait >"$REPO_ROOT/.data/samples/dataset.json"
fi
if "$bin" dataset export sample-shelf --format coco --out "$REPO_ROOT/.data/samples/sample-shelf-coco.zip" >"$REPO_ROOT/.data/samples/export.json"; then
	info "$(python3 -c 'import json,sys,zipfile; e=json.load(sys.stdin); z=zipfile.ZipFile(e["path"]); s=[json.loads(z.read("annotations/instances_%s.json" % p)) for p in ("train", "val", "test")]; print("dataset sample-shelf: %s images, %d boxes with polygons, %.1f MB, in %s" % ("/".join(str(len(a["images"])) for a in s) + " train/val/test", sum(len(a["annotations"]) for a in s), e["size"]/1e6, e["path"]))' <"$REPO_ROOT/.data/samples/export.json")"
fi

step "Shelf photos: synthetic shelves of the sample products, matched and reviewed"
# Two shelf photos made of the sample products' own frames (pasted on
# shelves over generated backgrounds, with YOLO labels naming each product by
# its barcode), uploaded with their labels, every crop matched to the
# directory by the worker with the serving model, each crop confirmed as the
# product its label names (as a person with the labelled photos would), and
# the coverage figures printed. Made once.
shelves="$REPO_ROOT/.data/samples/shelves"
if [ "$("$bin" shelf list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ]; then
	"$bin" shelf sample --out "$shelves" --photos 2 --per-photo 5 --seed 3 >/dev/null
	"$bin" shelf upload "$shelves"/shelf-*.jpg "$shelves"/shelf-*.txt "$shelves/data.yaml" --store "Sample store" >"$REPO_ROOT/.data/samples/shelf-upload.json"
	info "$(python3 -c 'import json,sys; r=json.load(sys.stdin); print("uploaded %d shelf photos with %d boxes" % (len(r["images"]), r["boxes"]))' <"$REPO_ROOT/.data/samples/shelf-upload.json")"
	"$bin" shelf match --wait >/dev/null 2>&1 || true
	for image in $("$bin" shelf list | python3 -c 'import json,sys; print(" ".join(str(i["id"]) for i in json.load(sys.stdin)))'); do
		"$bin" shelf show "$image" | python3 -c 'import json,sys; print("\n".join("%s %s" % (b["id"], b["label"]) for b in json.load(sys.stdin)["boxes"] if b["label"]))' |
			while read -r box label; do "$bin" shelf review "$box" confirm --product "$label" >/dev/null; done
	done
fi
psql -X -q "$("$bin" db url)" -c '\pset footer off' -f sql/shelf_matching.sql | sed 's/^/    /'
"$bin" shelf coverage | python3 -c 'import json,sys; r=json.load(sys.stdin); p=r["products"]; print("    coverage by %s: %d products with real crops; worst: %s" % (r["model"], len(p), ", ".join("%s (recall@1 %.2f, %s)" % (x["barcode"], x["recall_at_1"] or 0, x["verdict"]) for x in p[:3]) or "none"))'

step "Training an embedding model on the sample products (on the worker)"
# A recognition dataset of the five products (3 to train on, 2 never seen
# in training to validate on), the tiny preset trained from scratch, and
# its model made the one search uses.
if ! "$bin" dataset show sample-products >/dev/null 2>&1; then
	"$bin" dataset create sample-products --task recognition --status needs_review --status approved \
		--split 0.6,0.4,0 --copies 2 >/dev/null
	"$bin" dataset version sample-products --wait >/dev/null
fi
if "$bin" train start sample-products --epochs 6 --wait >"$REPO_ROOT/.data/samples/train.json" 2>"$REPO_ROOT/.data/samples/train.log"; then
	info "$(python3 -c 'import json,sys; r=json.load(sys.stdin); b=r["baseline"]; v=r["validation"]; best=max(v[1:], key=lambda m: m["map_at_r"]); print("run %s: validation recall@1 %.3f before training, %.3f after (classic descriptor %.3f); model %s" % (r["name"], b["base"]["recall_at_1"], best["recall_at_1"], b["classic"]["recall_at_1"], r["model"]))' <"$REPO_ROOT/.data/samples/train.json")"
	run_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["run"])' <"$REPO_ROOT/.data/samples/train.json")
	"$bin" train use "$run_id" 2>&1 | while read -r line; do info "$line"; done
	# Search keeps answering from the classic descriptor until every product
	# has the trained model's vectors; then the shelf crops are matched again
	# with it, and both models' figures are printed side by side.
	for _ in $(seq 1 120); do
		"$bin" models list | python3 -c 'import json,sys; sys.exit(0 if any(m["serving"] and m["kind"] == "dinov2" for m in json.load(sys.stdin)) else 1)' && break
		sleep 1
	done
	"$bin" shelf match --wait >/dev/null 2>&1 || true
	psql -X -q "$("$bin" db url)" -c '\pset footer off' -f sql/shelf_matching.sql | sed 's/^/    /'
else
	info "training did not finish: see $REPO_ROOT/.data/samples/train.log"
fi

step "A merchant's product list, assigned to the directory"
# Without a Gemini key the sample products have no catalog names; give the
# ones without any the names a reviewer would, so that names can be matched.
psql -X -q "$("$bin" db url)" -c "UPDATE products p SET brand_name = v.brand, product_name = v.name, net_quantity = v.size
    FROM (VALUES ('8690000000001', 'Sample Dairy', 'Whole milk', '1 L'),
                 ('8690000000002', 'Sample Dairy', 'Light milk', '1 L'),
                 ('8690000000003', 'Sample Drinks', 'Cola zero', '330 ml'),
                 ('8690000000004', 'Sample Water', 'Mineral water', '500 ml'),
                 ('8690000000005', 'Sample Snacks', 'Potato chips paprika', '150 g')) v (barcode, brand, name, size)
    WHERE p.barcode = v.barcode AND p.product_name IS NULL"
# A list made from the directory the way merchants' lists differ from it
# (other spellings, missing barcodes, a product the directory lacks), with
# two bad lines: the first import refuses them and names them; the second
# takes the good lines. Then the exact barcode matches are accepted in bulk
# and the assignments exported.
list="$REPO_ROOT/.data/samples/merchant-list.csv"
if ! "$bin" merchant list | grep -q '"code": "sample-merchant"'; then
	"$bin" merchant create sample-merchant --name "Sample merchant" >/dev/null
	"$bin" merchant sample --out "$list" --lines 6 --seed 2 --bad 2
	"$bin" merchant import sample-merchant "$list" 2>/dev/null |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print("\n".join("    refused: line %d: %s" % (b["line"], b["reason"]) for b in r.get("bad", [])))' || true
	"$bin" merchant import sample-merchant "$list" --good-lines --wait 2>/dev/null |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]["import"]; print("    imported %s: %d added, %d lines left out" % (r["file_name"], r["added"], len(r["skipped"])))'
	"$bin" merchant accept-barcodes sample-merchant --yes 2>&1 >/dev/null | sed 's/^/    /'
fi
"$bin" merchant export sample-merchant --format csv --out "$REPO_ROOT/.data/samples/merchant-assignments.csv" 2>/dev/null
info "$(python3 -c 'import csv,sys,collections; c=collections.Counter(r["status"] for r in csv.DictReader(open(sys.argv[1]))); print("sample-merchant: " + ", ".join("%d %s" % (n, s) for s, n in sorted(c.items())) + " (review the rest at /merchants)")' "$REPO_ROOT/.data/samples/merchant-assignments.csv")"

printf '\n    Buybuddy is running: http://%s\n' "$bind"
printf '    Sign in as %s with the password %s (kept in %s)\n' "$admin_email" "$(cat "$password_file")" "$password_file"
printf '    Database: %s\n' "$("$bin" db status)"
printf '    Queue a test job:   %s jobs push sleep millis=3000 steps=6\n' "$bin"
printf '    Search by photo:    http://%s/search\n' "$bind"
printf '    Datasets:           http://%s/datasets\n' "$bind"
printf '    Training:           http://%s/training\n' "$bind"
printf '    Shelf photos:       http://%s/shelves (review: /shelves/review, coverage: /coverage)\n' "$bind"
printf '    Merchants:          http://%s/merchants\n' "$bind"
printf '    Stop with Ctrl-C.\n\n'
wait -n "${pids[@]}"
