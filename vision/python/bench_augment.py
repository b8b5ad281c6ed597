"""The reference side of `buybuddy bench dataset`: albumentations on the same
518x518 image and mask, one core (OpenCV held to one thread), each case
timed over N draws. Prints one JSON object: {case: images per second}.

    bench_augment.py N
"""

import json
import sys
import time

import cv2
import numpy as np

cv2.setNumThreads(1)
import albumentations as A  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    x, y = np.meshgrid(np.arange(518), np.arange(518))
    image = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    mask = np.zeros((518, 518), np.uint8)
    mask[80:450, 100:400] = 255
    # The same transforms, ranges and probabilities as the Rust side's cases.
    cases = {
        "flip": A.HorizontalFlip(p=1),
        "rotate": A.Rotate(limit=15, p=1),
        "scale_shift": A.Affine(scale=(0.8, 1.1), translate_percent=(-0.08, 0.08), p=1),
        "brightness_contrast": A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1),
        "hue_saturation": A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=30, val_shift_limit=0, p=1),
        "blur": A.GaussianBlur(blur_limit=(3, 7), p=1),
        "noise": A.GaussNoise(std_range=(2 / 255, 8 / 255), p=1),
        "jpeg": A.ImageCompression(quality_range=(80, 80), p=1),
        "pipeline": A.Compose([
            A.Rotate(limit=15, p=0.5),
            A.Affine(scale=(0.8, 1.1), translate_percent=(-0.08, 0.08), p=0.5),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.2, p=0.5),
            A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=30, val_shift_limit=0, p=0.3),
            A.GaussianBlur(blur_limit=(3, 5), p=0.2),
            A.GaussNoise(std_range=(2 / 255, 8 / 255), p=0.2),
            A.ImageCompression(quality_range=(60, 95), p=0.2),
        ], seed=1),
    }
    out = {}
    for name, t in cases.items():
        pipeline = t if isinstance(t, A.Compose) else A.Compose([t], seed=1)
        for _ in range(5):
            pipeline(image=image, mask=mask)
        start = time.perf_counter()
        for _ in range(n):
            pipeline(image=image, mask=mask)
        out[name] = n / (time.perf_counter() - start)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
