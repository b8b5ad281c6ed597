"""The Python side of the SAM 3 benchmark: the same exported TorchScript module
that the worker runs, driven from Python torch on the same inputs (the export's
reference frame, resized and normalised on the device as the worker does).

  python bench_sam3.py --model DIR [--device cuda] [--batches 1,4,8] [--frames 64]

Prints one JSON line per batch size, like `sam3-bench`'s `forward` figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from export_sam3 import reference_frame  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    meta = json.loads((args.model / "sam3.json").read_text())
    device = torch.device(args.device)
    dtype = getattr(torch, meta["dtype"])
    module = torch.jit.load(str(args.model / "sam3.pt"), map_location=device).eval()
    size = meta["image_size"]
    mean = torch.tensor(meta["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(meta["std"], device=device).view(1, 3, 1, 1)
    ref = meta["reference_encodings"][0]
    ids = torch.tensor([ref["input_ids"]], device=device)
    mask = torch.tensor([ref["attention_mask"]], device=device)
    frame = reference_frame(args.width, args.height).to(device).permute(2, 0, 1).unsqueeze(0).float()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for batch in [int(b) for b in args.batches.split(",")]:
        with torch.inference_mode():
            resized = torch.nn.functional.interpolate(frame, size=(size, size), mode="bilinear", antialias=True)
            pixels = ((resized.round().clamp(0, 255) / 255 - mean) / std).to(dtype).expand(batch, -1, -1, -1).contiguous()
            text = module.encode_text(ids, mask)
            text_b, mask_b = text.expand(batch, -1, -1), mask.expand(batch, -1)
            for _ in range(args.warmup):
                module(pixels, text_b, mask_b)
            sync()
            passes = -(-args.frames // batch)
            started = time.perf_counter()
            for _ in range(passes):
                module(pixels, text_b, mask_b)
            sync()
            took = time.perf_counter() - started
        line = {
            "backend": "python-torch",
            "model": meta["model"],
            "dtype": meta["dtype"],
            "device": str(device),
            "batch": batch,
            "frames": args.frames,
            "forward_fps": passes * batch / took,
            # Peak resident memory of this process (Linux reports KiB).
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        if device.type == "cuda":
            line["torch_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        print(json.dumps(line), flush=True)
        print(f"batch {batch}: forward {line['forward_fps']:.1f} frames/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
