"""Embeds pixels with a model folder the platform trained, through
transformers alone: Dinov2Model.from_pretrained, the pooled output, then the
folder's embedding head (head.weight / head.bias, `projection_dim` in
config.json) and L2 normalisation. How a trained model is used elsewhere.

usage: embed_trained.py FOLDER INPUT.safetensors OUTPUT.safetensors
(INPUT holds "pixels" [B, 3, S, S]; OUTPUT gets "embeddings" [B, D].)
"""

import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import Dinov2Model


def main():
    folder, source, target = sys.argv[1:4]
    model = Dinov2Model.from_pretrained(folder).eval()
    pixels = load_file(source)["pixels"]
    with torch.no_grad():
        pooled = model(pixel_values=pixels).pooler_output
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        if config.get("projection_dim"):
            weights = load_file(os.path.join(folder, "model.safetensors"))
            pooled = pooled @ weights["head.weight"].T + weights["head.bias"]
        save_file({"embeddings": F.normalize(pooled, dim=-1).contiguous()}, target)


if __name__ == "__main__":
    main()
