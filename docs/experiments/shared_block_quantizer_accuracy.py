"""Experiment: what one quantizer per block input costs in accuracy (DESIGN §2).

    PYTHONPATH=. .venv/bin/python docs/experiments/shared_block_quantizer_accuracy.py [FLOAT_EP] [QAT_EP]

ResNet-20 on the embedded digits (16x16, augmented), float-trained, then QAT (BN unfolded, the same seed)
under block-wise low-bit configs twice: the shipped scheme (the identity skip keeps its own 8-bit
quantizer) and the shared one (the skip and the downsample conv read conv1's input quantizer, so the
residual stream runs at conv1's a bits). Prints test accuracy (359 images: one image is 0.28%).
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

import sdk
import sdk.data
import sdk.training
from sdk.models.resnet_cifar import CifarBasicBlock

CONFIGS = {"a2-3": [(2, 3), (3, 3), (2, 3)], "a3-4": [(3, 3), (3, 4), (4, 4)], "a2": [(2, 2), (3, 2), (2, 2)]}


def block_config(model: nn.Module, cycle: list[tuple[int, int]]) -> sdk.MixedPrecisionConfig:
    cfg = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
    blocks = [n for n, m in model.named_modules() if isinstance(m, CifarBasicBlock)]
    for i, block in enumerate(blocks):
        for name in cfg:
            if name.startswith(block + "."):
                cfg[name] = cycle[i % len(cycle)]
    return cfg


def share_block_quantizers(q: nn.Module) -> None:
    for m in q.modules():
        if isinstance(m, CifarBasicBlock):
            if isinstance(m.shortcut, nn.Identity):
                m.add.quant_b = m.conv1.act_quant
            else:
                m.shortcut[0].act_quant = m.conv1.act_quant


def main(float_epochs: int, qat_epochs: int) -> None:
    torch.manual_seed(0)
    splits = sdk.data.digits(upscale=2, channels=3, batch_size=64, augment=True)
    model = sdk.models.create("resnet20", num_classes=10, in_channels=3)
    t0 = time.time()
    sdk.training.train(model, splits.train, epochs=float_epochs, lr=0.05, progress=False)
    model.eval()
    print(f"float: {sdk.training.evaluate(model, splits.test):.4f} ({time.time() - t0:.0f} s)")
    for label, cycle in CONFIGS.items():
        accs = {}
        for scheme in ("separate", "shared"):
            torch.manual_seed(1)
            q = sdk.quantize(model, block_config(model, cycle))
            if scheme == "shared":
                share_block_quantizers(q)
            with torch.no_grad():
                q.train()(next(iter(splits.train))[0])  # initialise the quantizers
            sdk.training.train(q, splits.train, epochs=qat_epochs, lr=0.01, progress=False, reshape=False)
            accs[scheme] = sdk.training.evaluate(q.eval(), splits.test)
        print(f"{label}: separate 8-bit skip {accs['separate']:.4f}, shared {accs['shared']:.4f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3])) if len(sys.argv) > 2 else main(10, 4)
