"""The Python side of `buybuddy bench train`: the same training step as the
platform's (a DINOv2 built from the same config.json with random weights, a
linear head, sub-center ArcFace, AdamW with the same parameter groups, the
global gradient norm clipped to 1, warm-up then cosine decay), on a batch of
P products x K frames of random pixels. Prints one JSON line: steps/s after
warm-up steps, and the process's peak resident memory.
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F
from transformers import Dinov2Config, Dinov2Model


class SubCenterArcFace(torch.nn.Module):
    def __init__(self, classes, dims, sub_centers=3, margin=0.3, scale=30.0):
        super().__init__()
        self.centres = torch.nn.Parameter(torch.randn(classes * sub_centers, dims))
        self.sub_centers, self.margin, self.scale = sub_centers, margin, scale

    def forward(self, embeddings, labels):
        cos = F.normalize(embeddings, dim=-1) @ F.normalize(self.centres, dim=-1).T
        cos = cos.view(embeddings.shape[0], -1, self.sub_centers).amax(2)
        cos = cos.clamp(-1 + 1e-7, 1 - 1e-7)
        index = labels.unsqueeze(1)
        target = cos.gather(1, index)
        with_margin = (target.acos() + self.margin).clamp_max(math.pi).cos()
        logits = cos.scatter(1, index, with_margin) * self.scale
        return F.cross_entropy(logits, labels)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="config.json of the model")
    parser.add_argument("--p", type=int, required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    with open(args.config) as f:
        config = json.load(f)
    config.pop("projection_dim", None)
    torch.manual_seed(0)
    backbone = Dinov2Model(Dinov2Config(**config, attn_implementation="sdpa"))
    head = torch.nn.Linear(config["hidden_size"], args.head_dim)
    loss_fn = SubCenterArcFace(args.p, args.head_dim)
    backbone.train()

    lr = 1e-4
    decay, no_decay = [], []
    for name, param in backbone.named_parameters():
        if name == "embeddings.mask_token":
            param.requires_grad_(False)
            continue
        (decay if param.ndim >= 2 and not name.startswith("embeddings.") else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": 0.05, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
        {"params": [head.weight], "weight_decay": 0.05, "lr": lr * 10},
        {"params": [head.bias], "weight_decay": 0.0, "lr": lr * 10},
        {"params": list(loss_fn.parameters()), "weight_decay": 0.0, "lr": lr * 10},
    ]
    optimiser = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    total = args.steps + args.warmup
    warm = 20

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        t = min((step - warm) / max(total - warm, 1), 1.0)
        return 0.5 * (1 + math.cos(math.pi * t))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    size = config["image_size"]
    batch = args.p * args.k
    pixels = torch.randn(batch, 3, size, size)
    labels = torch.arange(args.p).repeat_interleave(args.k)
    params = [p for g in groups for p in g["params"]]

    def step():
        optimiser.zero_grad(set_to_none=True)
        pooled = backbone(pixel_values=pixels).pooler_output
        loss = loss_fn(head(pooled), labels)
        value = loss.item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        return value

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - started
    print(json.dumps({
        "steps_per_s": args.steps / seconds,
        "images_per_s": args.steps * batch / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
