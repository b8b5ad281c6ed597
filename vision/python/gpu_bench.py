"""The SAM 3 backend benchmark on a GPU machine, in one go: exports the models,
runs the worker's Rust backend (`sam3-bench`) and the same TorchScript module
from Python torch at each batch size, one process per run, while sampling the
GPU's memory, and prints a table.

  python vision/python/gpu_bench.py --bench-bin target/release/sam3-bench --out /tmp/sam3-bench

Models: SAM 3's full architecture with random weights (the real model's
compute) in float32 and float16, and the tiny test model. Peak memory is the
GPU's memory in use during a run (nvidia-smi, every 20 ms) less what was in use
before it: CUDA context, weights, activations and the caching allocator's
reserve, measured the same way for both. On CPU (--device cpu) it is each
process's peak resident memory instead, which for Python includes the
interpreter and torch's Python side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent


def gpu_memory_mib() -> int | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0"],
            capture_output=True, text=True, timeout=5,
        )
        return int(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def run_sampled(command: list[str], env: dict, on_gpu: bool) -> tuple[list[dict], int | None, str]:
    """Runs a benchmark process; its JSON lines, its peak GPU memory (MiB; None
    off the GPU) and its stderr."""
    baseline = gpu_memory_mib() if on_gpu else None
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            used = gpu_memory_mib()
            if used is not None and (peak[0] is None or used > peak[0]):
                peak[0] = used
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    if baseline is not None:
        sampler.start()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    done.set()
    if baseline is not None:
        sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-4000:]}")
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    extra = None if baseline is None or peak[0] is None else peak[0] - baseline
    return lines, extra, proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench-bin", type=Path, required=True, help="the sam3-bench binary")
    parser.add_argument("--out", type=Path, required=True, help="folder for the exports and the table")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3, help="passes before timing, per run")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--models", default="full:float16,full:float32,tiny:float32",
                        help="size:dtype pairs to export and measure")
    args = parser.parse_args()

    env = dict(os.environ)
    import torch  # the same libtorch the Rust binary runs with

    torch_lib = str(Path(torch.__file__).parent / "lib")
    env["LD_LIBRARY_PATH"] = torch_lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    args.out.mkdir(parents=True, exist_ok=True)
    on_gpu = args.device.startswith("cuda")
    memory = "peak GPU MiB" if on_gpu else "peak RSS MiB"

    rows = []
    for spec in args.models.split(","):
        size, dtype = spec.split(":")
        folder = args.out / f"sam3-{size}-{dtype}"
        if not (folder / "sam3.json").exists():
            started = time.monotonic()
            subprocess.run(
                [sys.executable, str(HERE / "export_sam3.py"), "--random", size, "--out", str(folder),
                 "--device", args.device, "--dtype", dtype],
                check=True, env=env,
            )
            print(f"exported {folder} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        common = ["--model", str(folder), "--device", args.device, "--frames", str(args.frames),
                  "--width", str(args.width), "--height", str(args.height), "--warmup", str(args.warmup)]
        for batch in args.batches.split(","):
            py, py_mem, _ = run_sampled([sys.executable, str(HERE / "bench_sam3.py"), *common, "--batches", batch], env, on_gpu)
            rs, rs_mem, rs_err = run_sampled([str(args.bench_bin), *common, "--batches", batch], env, on_gpu)
            if not on_gpu:
                # No GPU memory to sample: each process's own peak resident memory.
                py_mem, rs_mem = py[0].get("peak_rss_mib"), rs[0].get("peak_rss_mib")
            row = {
                "model": size, "dtype": dtype, "batch": int(batch),
                "python_fps": py[0]["forward_fps"], "rust_fps": rs[0]["forward_fps"],
                "rust_segment_fps": rs[0]["segment_fps"],
                "python_peak_mib": py_mem, "rust_peak_mib": rs_mem,
                "python_max_allocated_mib": py[0].get("torch_max_allocated_mib"),
            }
            row["ratio"] = row["rust_fps"] / row["python_fps"]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    device_line = rs_err.strip().splitlines()[0] if rs_err.strip() else ""
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
    table = [
        f"SAM 3 backend, {args.frames} frames of {args.width}x{args.height}; {device_line}",
        "",
        f"| model | dtype | batch | Python torch frames/s | Rust tch frames/s | ratio | Rust whole backend frames/s | Python {memory} | Rust {memory} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['python_fps']:.3g} | {r['rust_fps']:.3g} | "
            f"{r['ratio']:.3f} | {r['rust_segment_fps']:.3g} | {fmt(r['python_peak_mib'], '.0f')} | {fmt(r['rust_peak_mib'], '.0f')} |"
        )
    text = "\n".join(table) + "\n"
    (args.out / "table.md").write_text(text)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
