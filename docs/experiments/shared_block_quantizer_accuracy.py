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
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_block_quantizer import block_config, share_block_quantizers  # noqa: E402

import sdk  # noqa: E402
import sdk.data  # noqa: E402
import sdk.training  # noqa: E402
from sdk.models.resnet_cifar import CifarBasicBlock  # noqa: E402

CONFIGS = {"a2-3": [(2, 3), (3, 3), (2, 3)], "a3-4": [(3, 3), (3, 4), (4, 4)], "a2": [(2, 2), (3, 2), (2, 2)]}


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
            q = sdk.quantize(model, block_config(model, cycle, CifarBasicBlock))
            if scheme == "shared":
                share_block_quantizers(q, CifarBasicBlock, shortcut="shortcut")
            with torch.no_grad():
                q.train()(next(iter(splits.train))[0])  # initialise the quantizers
            sdk.training.train(q, splits.train, epochs=qat_epochs, lr=0.01, progress=False, reshape=False)
            accs[scheme] = sdk.training.evaluate(q.eval(), splits.test)
        print(f"{label}: separate 8-bit skip {accs['separate']:.4f}, shared {accs['shared']:.4f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3])) if len(sys.argv) > 2 else main(10, 4)
