"""Exports SAM 3's image path (vision encoder, text encoder, detector and mask
decoder) as TorchScript for the worker's `sam3` segmenter.

Writes three files into --out:
  sam3.pt         the traced module: `encode_text(input_ids, attention_mask)` and
                  `forward(pixel_values, text_features, text_mask)`
  tokenizer.json  the model's CLIP tokenizer, for the `tokenizers` crate
  sam3.json       what the worker needs to feed the module (input size,
                  normalisation, prompt length, pad id, device, dtype) and a few
                  reference encodings that the worker checks its tokenizer against

Weights:
  --pretrained facebook/sam3   the released weights (gated on Hugging Face: accept
                               the licence there, then set HF_TOKEN)
  --random full                SAM 3's full architecture, randomly initialised
                               (the real model's compute, for benchmarks)
  --random tiny                a few-layer random model (tests, CPU)

Tracing bakes the device and dtype into the graph: export on the kind of device
the worker runs on (--device cuda for GPU workers, with --dtype float16 for half
precision), or on CPU for CPU workers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
import time
from pathlib import Path

import torch
from torch import nn
import transformers
from transformers import CLIPTokenizerFast, Sam3Config, Sam3Model

IMAGE_SIZE = 1008
PROMPT_LENGTH = 32
# Sam3ImageProcessor's defaults: bilinear resize to 1008x1008, x/255, then (x - 0.5) / 0.5.
MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]
# Prompts whose encodings the worker checks its own tokenizer against.
REFERENCE_PROMPTS = [
    "product",
    "a red can of cola",
    "Ülker Çikolatalı Gofret 36g",
    "box",
    "a very long product name that goes on and on past the thirty two tokens the text encoder takes at most",
]


class ImagePath(nn.Module):
    """SAM 3 from a frame and a tokenised prompt to scored instance masks."""

    def __init__(self, model: Sam3Model):
        super().__init__()
        self.model = model

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[1, L] ids and mask -> [1, L, 256] prompt features (once per video)."""
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    def forward(self, pixel_values: torch.Tensor, text_features: torch.Tensor, text_mask: torch.Tensor):
        """[B, 3, 1008, 1008] frames, [B, L, 256] features, [B, L] mask ->
        mask logits [B, Q, 288, 288], query logits [B, Q], presence logit [B, 1], boxes [B, Q, 4] (xyxy, 0..1)."""
        out = self.model(
            pixel_values=pixel_values,
            text_embeds=_TextEmbeds(text_features),
            attention_mask=text_mask,
            return_dict=True,
        )
        return out.pred_masks, out.pred_logits, out.presence_logits, out.pred_boxes


class _TextEmbeds:
    """What Sam3Model reads from precomputed text features."""

    def __init__(self, pooler_output: torch.Tensor):
        self.pooler_output = pooler_output


def tiny_config(tokenizer: CLIPTokenizerFast) -> Sam3Config:
    """Every part of SAM 3 at toy width and depth; the 1008x1008 input is kept."""
    return Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "global_attn_indexes": [1],
                "window_size": 24,
            },
            "fpn_hidden_size": 32,
        },
        text_config={
            "model_type": "clip_text_model",
            "vocab_size": TINY_VOCAB_SIZE,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "hidden_size": 32,
            "intermediate_size": 64,
            "projection_dim": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": PROMPT_LENGTH,
        },
        geometry_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_decoder_config={
            "hidden_size": 32,
            "num_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "num_queries": 16,
        },
        mask_decoder_config={"hidden_size": 32, "num_attention_heads": 2},
    )


# A small CLIP vocabulary: the 256 byte symbols, each also as a word end, a few
# merges, and the two special tokens.
TINY_WORDS = ["product", "bottle", "can", "box", "of", "red", "cola", "water", "milk", "pack"]
TINY_VOCAB_SIZE = 1024


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible map from bytes to printable characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def tiny_tokenizer() -> CLIPTokenizerFast:
    symbols = list(_bytes_to_unicode().values())
    vocab: list[str] = symbols + [s + "</w>" for s in symbols]
    merges: list[tuple[str, str]] = []
    for word in TINY_WORDS:
        # Merge each word left to right into one token.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            merged = pieces[0] + pieces[1]
            if pair not in merges:
                merges.append(pair)
                vocab.append(merged)
            pieces = [merged] + pieces[2:]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) <= TINY_VOCAB_SIZE, len(vocab)
    return CLIPTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, merges=merges)


def load(args) -> tuple[Sam3Model, CLIPTokenizerFast, str]:
    if args.pretrained:
        from transformers import Sam3Processor

        token = os.environ.get("HF_TOKEN")
        model = Sam3Model.from_pretrained(args.pretrained, token=token)
        tokenizer = Sam3Processor.from_pretrained(args.pretrained, token=token).tokenizer
        return model, tokenizer, f"pretrained {args.pretrained}"
    torch.manual_seed(args.seed)
    tokenizer = tiny_tokenizer()
    if args.random == "tiny":
        config = tiny_config(tokenizer)
    else:
        # The full architecture keeps CLIP's 49,408-token embedding table; the
        # small vocabulary only uses its first rows.
        config = Sam3Config()
    model = Sam3Model(config)
    return model, tokenizer, f"random {args.random} (seed {args.seed})"


def reference_frame(width: int = 200, height: int = 150) -> torch.Tensor:
    """A deterministic RGB frame [H, W, 3] (uint8) that the worker's tests rebuild
    pixel for pixel: R = (7x + 3y) mod 256, G = (2x + 5y) mod 256, B = (x xor y) mod 256."""
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([(7 * x + 3 * y) % 256, (2 * x + 5 * y) % 256, (x ^ y) % 256], dim=-1).to(torch.uint8)


def reference_output(traced, tokenizer, device, dtype) -> dict:
    """What the traced module gives for the reference frame, preprocessed by SAM 3's
    own image processor, and the prompt "product": the worker's preprocessing and
    inference must reproduce it."""
    from transformers import Sam3ImageProcessor

    frame = reference_frame()
    pixels = Sam3ImageProcessor()(images=frame.permute(2, 0, 1), return_tensors="pt")["pixel_values"]
    ids, mask = encode(tokenizer, "product")
    ids, mask = torch.tensor([ids], device=device), torch.tensor([mask], device=device)
    with torch.inference_mode():
        text = traced.encode_text(ids, mask)
        masks, logits, presence, _ = traced(pixels.to(device=device, dtype=dtype), text, mask)
    scores = (logits.float().sigmoid() * presence.float().sigmoid())[0]
    return {
        "width": frame.shape[1],
        "height": frame.shape[0],
        "prompt": "product",
        "pixel_mean": pixels.float().mean().item(),
        # Preprocessed values at fixed [channel, y, x] points of the model's input.
        "pixel_samples": [
            [c, y, x, pixels[0, c, y, x].item()] for c in range(3) for y, x in [(0, 0), (17, 500), (503, 3), (777, 911), (1007, 1007)]
        ],
        "scores": scores.tolist(),
        "mask_logit_means": masks[0].float().mean(dim=(1, 2)).tolist(),
    }


def reference_or_none(traced, tokenizer, device, dtype) -> dict | None:
    try:
        import torchvision  # noqa: F401  (SAM 3's image processor needs it)
    except ImportError:
        print("torchvision is missing: no reference output recorded", file=sys.stderr)
        return None
    return reference_output(traced, tokenizer, device, dtype)


def encode(tokenizer, prompt: str) -> tuple[list[int], list[int]]:
    encoded = tokenizer(prompt, padding="max_length", truncation=True, max_length=PROMPT_LENGTH)
    return list(encoded["input_ids"]), list(encoded["attention_mask"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", metavar="REPO", help="Hugging Face repository, e.g. facebook/sam3 (needs HF_TOKEN)")
    source.add_argument("--random", choices=["tiny", "full"], help="random weights: a toy model or the full architecture")
    parser.add_argument("--out", type=Path, required=True, help="folder for sam3.pt, tokenizer.json and sam3.json")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the worker will run it")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument("--trace-batch", type=int, default=2, help="batch size the graph is traced with")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # Tracing warns at every Python-side shape check; the result is compared with
    # the eager model below instead.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    started = time.monotonic()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    model, tokenizer, what = load(args)
    model = model.to(device=device, dtype=dtype).eval()
    print(f"loaded {what}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters", file=sys.stderr)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tokenizer.pad_token_id = pad_id
    ids, mask = encode(tokenizer, "product")
    input_ids = torch.tensor([ids], device=device)
    attention_mask = torch.tensor([mask], device=device)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    pixels = lambda n: (torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 2 - 1).to(device=device, dtype=dtype)

    wrapper = ImagePath(model).eval()
    with torch.inference_mode():
        text = wrapper.encode_text(input_ids, attention_mask)
        batch = args.trace_batch
        traced = torch.jit.trace_module(
            wrapper,
            {
                "encode_text": (input_ids, attention_mask),
                "forward": (pixels(batch), text.expand(batch, -1, -1), attention_mask.expand(batch, -1)),
            },
            check_trace=False,
        )
        # The trace must hold for other batch sizes: compare with the eager model.
        for n in sorted({1, batch + 1}):
            frames = pixels(n)
            expected = wrapper(frames, text.expand(n, -1, -1), attention_mask.expand(n, -1))
            got = traced(frames, text.expand(n, -1, -1), attention_mask.expand(n, -1))
            for name, e, g in zip(["masks", "logits", "presence", "boxes"], expected, got):
                if e.shape != g.shape or not torch.allclose(e.float(), g.float(), atol=1e-3, rtol=1e-3):
                    print(f"the traced module differs from the model at batch {n} ({name})", file=sys.stderr)
                    return 1
        masks, logits, _, _ = traced(pixels(1), text, attention_mask)

    args.out.mkdir(parents=True, exist_ok=True)
    traced.save(str(args.out / "sam3.pt"))
    tokenizer.backend_tokenizer.save(str(args.out / "tokenizer.json"))
    meta = {
        "format": 1,
        "model": what,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "device": str(device),
        "dtype": args.dtype,
        "image_size": IMAGE_SIZE,
        "mean": MEAN,
        "std": STD,
        "prompt_length": PROMPT_LENGTH,
        "pad_token_id": pad_id,
        "num_queries": logits.shape[1],
        "mask_size": list(masks.shape[2:]),
        "text_hidden": text.shape[2],
        "reference_output": reference_or_none(traced, tokenizer, device, dtype),
        "reference_encodings": [
            {"prompt": p, "input_ids": encode(tokenizer, p)[0], "attention_mask": encode(tokenizer, p)[1]}
            for p in REFERENCE_PROMPTS
        ],
    }
    (args.out / "sam3.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    print(
        f"wrote {args.out}/sam3.pt ({(args.out / 'sam3.pt').stat().st_size / 1e6:.1f} MB), tokenizer.json, sam3.json "
        f"in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
