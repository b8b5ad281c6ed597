"""transformers' Dinov2Model on the inputs `buybuddy bench embed` gives ours:
torch.randn from the same seed, [batch, 3, 518, 518], forward under
inference_mode, the pooled output L2-normalised. Prints one JSON line with
images per second and the process's peak resident memory.
"""

import argparse
import json
import time

import torch
from transformers import Dinov2Model


def peak_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true")
    args = parser.parse_args()

    device = torch.device(args.device)
    model = Dinov2Model.from_pretrained(args.model).eval().to(device)
    torch.manual_seed(0)
    pixels = torch.randn(args.batch, 3, 518, 518).to(device)

    def step():
        with torch.inference_mode():
            if args.half and device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    pooled = model(pixel_values=pixels).pooler_output
            else:
                pooled = model(pixel_values=pixels).pooler_output
            out = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()
        return out

    step()  # warm-up
    batches, started = 0, time.perf_counter()
    while batches < 2 or time.perf_counter() - started < args.seconds:
        step()
        batches += 1
    elapsed = time.perf_counter() - started
    result = {
        "engine": "transformers",
        "images_per_s": batches * args.batch / elapsed,
        "peak_rss_mb": peak_rss_mb(),
    }
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
