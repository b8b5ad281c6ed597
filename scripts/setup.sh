#!/usr/bin/env bash
# Installs everything the platform needs on Debian 12, idempotently:
# PostgreSQL 15 with pgvector (built from Debian's own source package),
# build tools, and the front-end assets from npm.
#
# Usage: scripts/setup.sh [--test]   (--test adds what the test suite needs)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WITH_TEST=0
for arg in "$@"; do
	case "$arg" in
	--test) WITH_TEST=1 ;;
	*) die "unknown argument: $arg" ;;
	esac
done

need_root
cd "$REPO_ROOT"

PG_MAJOR=15
PG_LIB=/usr/lib/postgresql/$PG_MAJOR
CACHE_DIR="$REPO_ROOT/.data/cache"

step "Debian packages"
apt_install ca-certificates curl git build-essential pkg-config libclang-dev \
	postgresql-$PG_MAJOR postgresql-client-$PG_MAJOR postgresql-contrib \
	postgresql-server-dev-$PG_MAJOR dpkg-dev
# FFmpeg 5.1: the libraries the decoder links, and the CLI that encodes sample videos.
apt_install ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev \
	libswresample-dev libavfilter-dev libavdevice-dev
# A machine may carry its own Node.js build (which bundles npm); Debian's is used otherwise.
command -v npm >/dev/null || apt_install nodejs npm
if [ "$WITH_TEST" = 1 ]; then
	# procps: process checks; python3-venv: the Gemini SDK the protocol tests compare with;
	# chromium and its WebDriver: the browser tests.
	apt_install procps python3 python3-venv chromium chromium-driver
fi

step "Rust toolchain"
command -v cargo >/dev/null || die "cargo is not on PATH; install Rust (rustup) first"
info "$(cargo --version)"

step "pgvector for PostgreSQL $PG_MAJOR"
if [ -f "/usr/share/postgresql/$PG_MAJOR/extension/vector.control" ] && [ -f "$PG_LIB/lib/vector.so" ]; then
	info "already installed: $(grep default_version /usr/share/postgresql/$PG_MAJOR/extension/vector.control)"
else
	# Debian 12 has no pgvector binary; trixie's source package builds against
	# PostgreSQL 15. The source entry reuses the machine's own Debian mirror and keyring.
	src_list=/etc/apt/sources.list.d/buybuddy-trixie-src.sources
	if [ ! -f "$src_list" ]; then
		uris=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
		uris=${uris:-http://deb.debian.org/debian}
		info "adding deb-src entry for trixie ($uris) in $src_list"
		cat >"$src_list" <<EOF
Types: deb-src
URIs: $uris
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		APT_UPDATED=0
	fi
	apt_update_once
	mkdir -p "$CACHE_DIR/pgvector"
	(
		cd "$CACHE_DIR/pgvector"
		if ! ls -d pgvector-*/ >/dev/null 2>&1; then
			info "apt-get source pgvector"
			apt-get source -qq pgvector 2>&1 | grep -v "unsandboxed as root" || true
		fi
		cd "$(ls -d pgvector-*/ | head -n1)"
		info "building $(basename "$PWD") (OPTFLAGS empty: runs on any x86-64)"
		make -s OPTFLAGS="" PG_CONFIG=$PG_LIB/bin/pg_config >/dev/null
		make -s OPTFLAGS="" PG_CONFIG=$PG_LIB/bin/pg_config install >/dev/null
	)
	info "installed: $(grep default_version /usr/share/postgresql/$PG_MAJOR/extension/vector.control)"
fi

step "libtorch 2.11.0 (PyPI's torch, in a virtualenv)"
# tch 0.24 binds libtorch 2.11.0. PyPI's torch wheel carries it with its CUDA
# libraries (about 4.6 GB); the build links it through .data/libtorch (see
# .cargo/config.toml). The same virtualenv runs vision/python/export_sam3.py.
apt_install python3 python3-venv
torch_venv="$REPO_ROOT/.data/torch"
torch_reqs="$REPO_ROOT/vision/python/requirements.txt"
if [ -x "$torch_venv/bin/python" ] && [ "$torch_reqs" -ot "$torch_venv/.installed" ]; then
	info "already installed: $(tr '\n' ' ' <"$torch_reqs")in $torch_venv"
else
	[ -x "$torch_venv/bin/python" ] || /usr/bin/python3 -m venv "$torch_venv"
	info "pip install $(tr '\n' ' ' <"$torch_reqs")(several GB the first time)"
	"$torch_venv/bin/pip" install --quiet --disable-pip-version-check --progress-bar off -r "$torch_reqs"
	touch "$torch_venv/.installed"
fi
torch_dir=$("$torch_venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
ln -sfn "$(realpath --relative-to="$REPO_ROOT/.data" "$torch_dir")" "$REPO_ROOT/.data/libtorch"
info "libtorch $("$torch_venv/bin/python" -c 'import torch; print(torch.__version__)') linked as .data/libtorch"

step "Front-end assets (npm)"
if [ -f node_modules/htmx.org/dist/htmx.min.js ] && [ package-lock.json -ot node_modules/.package-lock.json ]; then
	info "already installed: htmx.org $(node -p 'require("./node_modules/htmx.org/package.json").version')"
else
	info "npm ci"
	npm ci --no-audit --no-fund --loglevel=error
fi

if [ "$WITH_TEST" = 1 ]; then
	step "Gemini's Python SDK (the reference the client's requests are compared with)"
	venv="$REPO_ROOT/.data/venv"
	want=$(cat tests/sdk/requirements.txt)
	if [ -x "$venv/bin/python" ] && "$venv/bin/pip" freeze 2>/dev/null | grep -qx "$want"; then
		info "already installed: $want in $venv"
	else
		[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
		info "pip install $want"
		"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
	fi
fi

if [ "$WITH_TEST" = 1 ]; then
	step "pycocotools and Ultralytics (the consumers that read our COCO and YOLO exports back)"
	# Into the torch virtualenv, with torch and torchvision held at their pins
	# so that Ultralytics' requirements do not replace them.
	ds_reqs="$REPO_ROOT/tests/sdk/datasets-requirements.txt"
	if [ -f "$torch_venv/.datasets-installed" ] && [ "$ds_reqs" -ot "$torch_venv/.datasets-installed" ]; then
		info "already installed: $(tr '\n' ' ' <"$ds_reqs")in $torch_venv"
	else
		info "pip install $(tr '\n' ' ' <"$ds_reqs")"
		"$torch_venv/bin/pip" install --quiet --disable-pip-version-check --progress-bar off -r "$ds_reqs" -c "$torch_reqs"
		touch "$torch_venv/.datasets-installed"
	fi
	# Ultralytics reads its settings from here and, offline, must not try to
	# fetch a font: it gets the one matplotlib ships under the name it wants.
	yolo_dir="$REPO_ROOT/.data/ultralytics"
	mkdir -p "$yolo_dir"
	font=$("$torch_venv/bin/python" -c 'import matplotlib, os; print(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data/fonts/ttf/DejaVuSans.ttf"))')
	[ -f "$yolo_dir/Arial.ttf" ] || cp "$font" "$yolo_dir/Arial.ttf"
	[ -f "$yolo_dir/Arial.Unicode.ttf" ] || cp "$font" "$yolo_dir/Arial.Unicode.ttf"
	info "Ultralytics settings in $yolo_dir"
fi

if [ "$WITH_TEST" = 1 ]; then
	step "A tiny random SAM 3, exported to TorchScript (the SAM 3 backend's tests)"
	tiny="$REPO_ROOT/.data/models/sam3-tiny"
	if [ -f "$tiny/sam3.json" ] && [ vision/python/export_sam3.py -ot "$tiny/sam3.json" ] && [ "$torch_reqs" -ot "$tiny/sam3.json" ]; then
		info "already exported: $tiny"
	else
		info "vision/python/export_sam3.py --random tiny --out $tiny"
		rm -rf "$tiny"
		"$torch_venv/bin/python" vision/python/export_sam3.py --random tiny --out "$tiny" 2>&1 | grep -E "^(loaded|wrote)" | sed 's/^/    /'
		[ -f "$tiny/sam3.json" ] || die "the SAM 3 export failed"
	fi
fi

if [ "$WITH_TEST" = 1 ]; then
	step "Tiny random DINOv2 models with transformers' outputs (the DINOv2 port's equivalence test)"
	dino="$REPO_ROOT/.data/models/dinov2-tiny"
	if [ -f "$dino/tiny-swiglu/reference.safetensors" ] && [ vision/python/make_dinov2.py -ot "$dino/tiny-swiglu/reference.safetensors" ] && [ "$torch_reqs" -ot "$dino/tiny-swiglu/reference.safetensors" ]; then
		info "already made: $dino"
	else
		info "vision/python/make_dinov2.py --tiny --out $dino"
		rm -rf "$dino"
		"$torch_venv/bin/python" vision/python/make_dinov2.py --tiny --out "$dino" 2>&1 | grep -E "^wrote" | sed 's/^/    /'
		[ -f "$dino/tiny-swiglu/reference.safetensors" ] || die "making the tiny DINOv2 models failed"
	fi
fi

step "Set-up complete"
