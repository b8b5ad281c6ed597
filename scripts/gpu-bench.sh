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
# `run` checks that the binary links libtorch_cuda and sees the GPU, segments
# the sample video's frames with a full-size SAM 3 on CUDA, then measures
# frames/s and peak GPU memory of the Rust backend and of the same module from
# Python torch at batch 1, 4 and 8 (worker/export/gpu_bench.py), table last.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
gpu="$REPO_ROOT/.data/gpu"

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
	.data/torch/bin/pip download --quiet --disable-pip-version-check --no-deps -d "$gpu/wheels" \
		transformers==5.23.0 huggingface-hub packaging tqdm typer click rich shellingham \
		typing-extensions filelock fsspec markdown-it-py mdurl pygments annotated-doc httpx2 httpcore2 \
		h11 anyio idna certifi sniffio
	for py in 3.10 3.11 3.12 3.13; do
		.data/torch/bin/pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
			--python-version "$py" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
			--platform manylinux_2_28_x86_64 -d "$gpu/wheels" regex pyyaml safetensors tokenizers hf-xet ||
			info "no binary wheels for Python $py"
	done
	info "$(du -sh "$gpu" | cut -f1) in .data/gpu; carry .data/gpu and target/release/sam3-bench"
	;;
run)
	out="${OUT:-$gpu/out}"
	mkdir -p "$out"
	torch_lib=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib
	export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	step "The machine"
	python3 -c 'import sys, torch; print("   ", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
	step "ldd sam3-bench"
	ldd target/release/sam3-bench | grep -E "libtorch|libc10|not found" | tee "$out/ldd.txt"
	step "transformers for the export (from the carried wheels)"
	python3 -c 'import transformers' 2>/dev/null ||
		pip install --quiet --no-index --find-links "$gpu/wheels" --target "$gpu/site" transformers==5.23.0
	export PYTHONPATH="$gpu/site${PYTHONPATH:+:$PYTHONPATH}"
	python3 -c 'import transformers; print("    transformers", transformers.__version__)'
	step "Benchmark: Rust tch vs Python torch, the same module"
	python3 worker/export/gpu_bench.py --bench-bin target/release/sam3-bench --out "$out/bench" "${@:2}"
	step "A sample video's frames through the SAM 3 backend on CUDA (full size, float16)"
	target/release/sam3-bench --model "$out/bench/sam3-full-float16" --device cuda --batches 8 \
		--segment "$gpu/frames" --masks-out "$out/masks" | tee "$out/segment.json"
	cat "$out/bench/table.md"
	;;
*) die "usage: scripts/gpu-bench.sh prepare|run" ;;
esac
