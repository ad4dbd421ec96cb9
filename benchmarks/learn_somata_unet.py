"""Experiment: a tiny U-Net trained from scratch on the CPU as the soma engine's pixel step.

The alternative measured in docs/learning.md (Soma engine) (needs torch and ``../shared/data``):
a 3-level U-Net (16–128 channels) predicting background / soma interior / soma edge from
the stain optical densities of one ``nissl_cortex`` field at 0.5 µm/px, trained for a fixed
wall-clock budget on one thread (128² crops × 8, flips, rotations, stain jitter), then the
soma engine's seeded watershed on its probabilities; the other field is scored by object F1.

Usage::

    python benchmarks/learn_somata_unet.py TRAIN_INDEX BUDGET_S    # e.g. 0 420
"""

from __future__ import annotations

import glob
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main(argv: list[str] | None = None) -> None:
    """Train on field ``TRAIN_INDEX`` for ``BUDGET_S`` seconds and score the other field.

    Parameters
    ----------
    argv : list of str, optional
        ``[TRAIN_INDEX, BUDGET_S]`` (default: ``sys.argv[1:]``).
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as Fn

    from histoquant.io import read_image
    from histoquant.learn import somata as S
    from histoquant.measure.scores import match_labels

    argv = sys.argv[1:] if argv is None else argv
    tr, budget = int(argv[0]), float(argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    raws = sorted(glob.glob(str(SHARED / "nissl_cortex" / "raw" / "*.tif")))
    data = [(read_image(r), np.asarray(read_image(r.replace("raw", "gt")).data)
             .astype(np.int32)) for r in raws]
    p = dict(S._DEFAULTS)
    px = p["working_pixel_size_um"]
    fields = []
    for img, gt in data:
        from histoquant.learn.features import prepare_planes, rescale_planes
        planes, _ = prepare_planes(img, S._spec(p), "stain_od")
        ch = rescale_planes(planes[1:], img.pixel_size_um / px).transpose(1, 2, 0)
        lab = S._resize_labels(gt, ch.shape[:2])
        fields.append((ch, S._pixel_targets(lab, p["edge_um"] / px)))

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o),
                             nn.ReLU(inplace=True), nn.Conv2d(o, o, 3, padding=1),
                             nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self, c: int = 3, w: int = 16):
            super().__init__()
            self.e1, self.e2, self.e3 = block(c, w), block(w, 2 * w), block(2 * w, 4 * w)
            self.b = block(4 * w, 8 * w)
            self.u3, self.d3 = nn.ConvTranspose2d(8 * w, 4 * w, 2, 2), block(8 * w, 4 * w)
            self.u2, self.d2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), block(4 * w, 2 * w)
            self.u1, self.d1 = nn.ConvTranspose2d(2 * w, w, 2, 2), block(2 * w, w)
            self.out = nn.Conv2d(w, 3, 1)

        def forward(self, x):
            e1 = self.e1(x)
            e2 = self.e2(Fn.max_pool2d(e1, 2))
            e3 = self.e3(Fn.max_pool2d(e2, 2))
            b = self.b(Fn.max_pool2d(e3, 2))
            d3 = self.d3(torch.cat([self.u3(b), e3], 1))
            d2 = self.d2(torch.cat([self.u2(d3), e2], 1))
            return self.out(self.d1(torch.cat([self.u1(d2), e1], 1)))

    ch, t = fields[tr]
    mean, std = ch.reshape(-1, 3).mean(0), ch.reshape(-1, 3).std(0)
    net = UNet()
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-4)
    cnt = np.bincount(t.ravel(), minlength=3)
    wts = torch.tensor((cnt.sum() / cnt / 3) ** 0.5, dtype=torch.float32)
    rng = np.random.default_rng(0)
    crop, batch = 128, 8

    def draw() -> tuple:
        xs, ys = [], []
        for _ in range(batch):
            y0 = rng.integers(0, t.shape[0] - crop + 1)
            x0 = rng.integers(0, t.shape[1] - crop + 1)
            x = (ch[y0:y0 + crop, x0:x0 + crop] - mean) / std
            y = t[y0:y0 + crop, x0:x0 + crop]
            k = rng.integers(4)
            x, y = np.rot90(x, k), np.rot90(y, k)
            if rng.random() < .5:
                x, y = x[::-1], y[::-1]
            x = x * rng.uniform(0.8, 1.2) + rng.normal(0, 0.1, 3)
            xs.append(np.ascontiguousarray(x.transpose(2, 0, 1)))
            ys.append(np.ascontiguousarray(y))
        return (torch.tensor(np.stack(xs), dtype=torch.float32),
                torch.tensor(np.stack(ys), dtype=torch.long))

    t0 = time.perf_counter()
    step = 0
    while time.perf_counter() - t0 < budget:
        x, y = draw()
        net.train()
        loss = Fn.cross_entropy(net(x), y, weight=wts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    train_s = time.perf_counter() - t0
    net.eval()
    che, tte = fields[1 - tr]
    h, w = tte.shape
    x = np.pad((che - mean) / std, ((0, (-h) % 8), (0, (-w) % 8), (0, 0)), mode="reflect")
    with torch.no_grad():
        logits = net(torch.tensor(x.transpose(2, 0, 1)[None].copy(), dtype=torch.float32))
    prob = torch.softmax(logits, 1)[0].numpy().transpose(1, 2, 0)[:h, :w]
    gt = data[1 - tr][1]
    print(f"steps {step}, training {train_s:.0f} s, pixel accuracy "
          f"{(prob.argmax(-1) == tte).mean():.3f}")
    for seed_h in (0.5, 1.0, 2.0):
        lab = S._resize_labels(S._instances(prob, {**p, "seed_h_um": seed_h}), gt.shape)
        s = match_labels(gt, lab)
        print(f"train {tr}: seed_h_um {seed_h}: F1 {s.f1:.3f} (P {s.precision:.2f}, "
              f"R {s.recall:.2f})")


if __name__ == "__main__":
    main()
