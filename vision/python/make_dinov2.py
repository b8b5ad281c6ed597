"""Random DINOv2 folders in Hugging Face's layout, with reference outputs.

  make_dinov2.py --tiny --out DIR
      DIR/{tiny,tiny-registers,tiny-swiglu}: small random models saved with
      save_pretrained (config.json + model.safetensors) and reference.safetensors
      holding fixed inputs and what transformers computes for them (last hidden
      state and pooled output), for the Rust port's equivalence test.
  make_dinov2.py --size small|base --out DIR
      a randomly initialised model of a real size (ViT-S/14, ViT-B/14 at 518)
      for the embedding benchmark.

Every parameter is drawn at random (not left at its initial value, such as the
layer scales' 1.0), so a wrong mapping of any tensor shows in the outputs.
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

SIZES = {
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
}


def randomise(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.5 if "norm" in name or "layer_scale" in name else 0.05
            noise = torch.randn(param.shape, generator=generator) * scale
            if name.endswith("weight") and ("norm" in name):
                param.copy_(1.0 + noise)
            elif "layer_scale" in name:
                param.copy_(0.5 + noise)
            else:
                param.copy_(noise * (4.0 if "embeddings" in name else 1.0))


def inputs(seed):
    """Batches the test feeds both sides: 518x518 (the frames), and two sizes
    whose grids differ from the position table's (interpolation)."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "pixels_518": torch.randn(2, 3, 518, 518, generator=generator),
        "pixels_224x308": torch.randn(1, 3, 224, 308, generator=generator),
        "pixels_280": torch.randn(1, 3, 280, 280, generator=generator),
    }


def tiny(out):
    variants = {
        "tiny": (Dinov2Config, Dinov2Model, dict()),
        "tiny-registers": (Dinov2WithRegistersConfig, Dinov2WithRegistersModel, dict(num_register_tokens=4)),
        "tiny-swiglu": (Dinov2Config, Dinov2Model, dict(use_swiglu_ffn=True, layer_norm_eps=1e-5, mlp_ratio=3)),
    }
    for seed, (name, (config_class, model_class, extra)) in enumerate(variants.items()):
        torch.manual_seed(seed)
        config = config_class(
            hidden_size=48,
            num_hidden_layers=3,
            num_attention_heads=3,
            image_size=518,
            patch_size=14,
            **extra,
        )
        model = model_class(config).eval()
        randomise(model, 100 + seed)
        folder = os.path.join(out, name)
        model.save_pretrained(folder, safe_serialization=True)
        reference = {}
        with torch.no_grad():
            for key, pixels in inputs(200 + seed).items():
                output = model(pixel_values=pixels)
                suffix = key.removeprefix("pixels_")
                reference[key] = pixels.contiguous()
                reference[f"last_hidden_state_{suffix}"] = output.last_hidden_state.clone().contiguous()
                reference[f"pooled_{suffix}"] = output.pooler_output.clone().contiguous()
        save_file(reference, os.path.join(folder, "reference.safetensors"))
        print(f"wrote {folder} ({config.model_type}, {sum(p.numel() for p in model.parameters())} parameters)")


def sized(size, out):
    torch.manual_seed(0)
    config = Dinov2Config(image_size=518, patch_size=14, **SIZES[size])
    model = Dinov2Model(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    print(f"wrote {out} (random DINOv2 {size}, {sum(p.numel() for p in model.parameters())} parameters)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--tiny", action="store_true")
    group.add_argument("--size", choices=sorted(SIZES))
    args = parser.parse_args()
    if args.tiny:
        tiny(args.out)
    else:
        sized(args.size, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
