#!/usr/bin/env bash
# The SAM 3 backend on a GPU machine (which has python3 with torch 2.11 and the
# NVIDIA driver, but no Rust, no FFmpeg libraries and no network), in two steps:
#
#   scripts/gpu-bench.sh prepare   here: builds sam3-bench, decodes a sample
#                                  video's frames, fetches the export's wheels
#                                  into .data/gpu
#   scripts/gpu-bench.sh run       there, from the repository root, with
#                                  .data/gpu and target/release/sam3-bench
#                                  carried over; writes to $OUT (or .data/gpu/out)
#
# `run` checks that the binary links libtorch_cuda and sees the GPU, measures
# frames/s and peak GPU memory of the Rust backend and of the same module from
# Python torch at batch 1, 4 and 8 (vision/python/gpu_bench.py), then segments
# the sample video's frames with the full-size float16 export on CUDA, table
# last. $OUT gets ldd.txt, table.md, rows.json and segment.json.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
gpu="$REPO_ROOT/.data/gpu"
# The export's Python packages besides torch, carried as wheels and installed
# without dependency resolution: numpy, torchvision and Pillow come from the GPU
# machine's own Python, which pip --target cannot see.
transformers=$(grep -E '^transformers==' vision/python/requirements.txt)
pure=("$transformers" huggingface-hub packaging tqdm typer click rich shellingham typing-extensions
	filelock fsspec markdown-it-py mdurl pygments annotated-doc httpx2 httpcore2 h11 anyio idna
	certifi sniffio)
binary=(regex pyyaml safetensors tokenizers hf-xet)

case "${1:-}" in
prepare)
	step "sam3-bench (release, links no FFmpeg)"
	cargo build --release --locked -p buybuddy-vision --bin sam3-bench
	step "A sample video's frames"
	cargo build --release --locked --bin buybuddy
	rm -rf "$gpu/frames" && mkdir -p "$gpu/frames"
	# The video itself stays behind: what is carried must fit in 64 MiB.
	video=$(mktemp --suffix=.mp4)
	target/release/buybuddy sample-video --out "$video"
	ffmpeg -loglevel error -y -i "$video" -vf "select=not(mod(n\,4))" -vsync vfr "$gpu/frames/%03d.png"
	rm -f "$video" "$gpu/sample.mp4"
	info "$(ls "$gpu/frames" | wc -l) frames in .data/gpu/frames"
	step "Wheels for the export (transformers and what it needs, not torch)"
	rm -rf "$gpu/wheels" && mkdir -p "$gpu/wheels"
	.data/torch/bin/pip download --quiet --disable-pip-version-check --no-deps -d "$gpu/wheels" "${pure[@]}"
	for py in 3.11 3.12 3.13; do
		.data/torch/bin/pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
			--python-version "$py" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
			--platform manylinux_2_28_x86_64 -d "$gpu/wheels" "${binary[@]}" ||
			info "no binary wheels for Python $py"
	done
	info "$(du -sh "$gpu" | cut -f1) in .data/gpu; carry .data/gpu and target/release/sam3-bench"
	;;
run)
	# BENCH_DEVICE and BENCH_SEGMENT_MODEL exist to try the whole run on CPU
	# (`BENCH_DEVICE=cpu BENCH_SEGMENT_MODEL=sam3-tiny-float32 ... run --device cpu
	# --models tiny:float32`) before spending GPU time on it.
	# Only small files go to $OUT (the device tool returns at most 8): the
	# exports (gigabytes) and the masks stay in a scratch folder.
	out="${OUT:-$gpu/out}"
	work=$(mktemp -d)
	trap 'rm -rf "$work" "${site:-}"' EXIT
	device="${BENCH_DEVICE:-cuda}"
	segment_model="${BENCH_SEGMENT_MODEL:-sam3-full-float16}"
	mkdir -p "$out"
	torch_lib=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib
	export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	step "The machine"
	python3 -c 'import sys, torch; print("   ", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
	step "ldd sam3-bench"
	ldd target/release/sam3-bench | grep -E "libtorch|libc10|not found" | tee "$out/ldd.txt"
	step "$transformers for the export (from the carried wheels)"
	site=$(mktemp -d)
	python3 -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
		--find-links "$gpu/wheels" --target "$site" "${pure[@]}" "${binary[@]}"
	export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
	python3 -c "import sys, transformers; print('    transformers', transformers.__version__); \
		sys.exit(transformers.__version__ != '${transformers#*==}')"
	step "Benchmark: Rust tch vs Python torch, the same module"
	python3 vision/python/gpu_bench.py --bench-bin target/release/sam3-bench --out "$work/bench" "${@:2}"
	cp "$work/bench/table.md" "$work/bench/rows.json" "$out/"
	step "A sample video's frames through the SAM 3 backend ($segment_model on $device)"
	target/release/sam3-bench --model "$work/bench/$segment_model" --device "$device" --batches 8 \
		--segment "$gpu/frames" --masks-out "$work/masks" | tee "$out/segment.json"
	cat "$out/table.md"
	;;
*) die "usage: scripts/gpu-bench.sh prepare|run" ;;
esac
