"""Our validation and training transforms against PIL + torchvision on fixed JPEGs.

usage: image_reference.py IMAGE_PROBE WORKDIR

Writes a few JPEGs (odd sizes, portrait and landscape, a grayscale one) with PIL, runs
image_probe (tests/data/image_probe.cc, no DCT scaling) on each, and compares its normalised
224 x 224 sample with torchvision on the PIL image:
  val:   Resize(256), CenterCrop(224), ToTensor, Normalize
  train: the crop box and flip image_probe drew, through F.resized_crop(..., 224, BILINEAR),
         F.hflip, ToTensor, Normalize (the box's distribution is tested in image_test.cc)
Passes when every value is within 2 levels of 255.
"""
import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as F

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def pattern(width, height, seed):
    """A textured image: smooth ramps, stripes and noise, so resampling errors show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 255 * x / width
    b = 128 + 60 * np.sin((x + y) / 3.0) + rng.normal(0, 20, (height, width))
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def levels(ours, theirs):
    """Largest difference in 0..255 levels between two normalised CHW samples."""
    std = np.array(STD).reshape(3, 1, 1)
    return float(np.abs((ours - theirs) * std).max() * 255)


def main():
    probe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    val = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), normalize])
    images = [(500, 375, "RGB"), (300, 451, "RGB"), (257, 256, "RGB"), (640, 427, "L"),
              (180, 200, "RGB")]
    worst = 0.0
    failures = []
    for k, (w, h, mode) in enumerate(images):
        path = os.path.join(work, f"img{k}_{w}x{h}.jpg")
        im = Image.fromarray(pattern(w, h, k))
        if mode == "L":
            im = im.convert("L")
        im.save(path, quality=90)
        pil = Image.open(path).convert("RGB")
        out = os.path.join(work, "out.f32")
        cases = [("val", 0)] + [("train", i) for i in range(4)]
        for split, index in cases:
            run = subprocess.run([probe, path, split, "5", str(index), out], check=True,
                                 capture_output=True, text=True)
            ours = np.fromfile(out, dtype=np.float32).reshape(3, 224, 224)
            if split == "val":
                theirs = val(pil).numpy()
            else:
                top, left, bh, bw, flip = map(int, run.stdout.split())
                crop = F.resized_crop(pil, top, left, bh, bw, [224, 224],
                                      transforms.InterpolationMode.BILINEAR)
                if flip:
                    crop = F.hflip(crop)
                theirs = normalize(crop).numpy()
            d = levels(ours, theirs)
            worst = max(worst, d)
            print(f"{os.path.basename(path)} {split} {index}: max {d:.3f} levels")
            if d > 2.0:
                failures.append(f"{path} {split} {index}: {d:.3f} levels")
    print(f"worst {worst:.3f} levels of 255")
    if failures:
        print("FAIL (more than 2 levels):\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
