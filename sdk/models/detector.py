"""Single-stage, anchor-free detectors for the edge: a zoo backbone to stride 8, a conv neck, one conv head.

Why FCOS-style (Tian et al. 2019) on a single stride-8 level, and not CenterNet or a multi-level YOLO/FCOS:
- Every op is a conv (+ BN, ReLU): no upsampling (CenterNet's stride-4 heatmap needs Resize/ConvTranspose,
  which the integer engines and QDQ fusions handle worst), no feature pyramid (its Resize and extra heads
  multiply ops for objects that at 64-96 px inputs span 1-6 cells of one level anyway).
- Anchor-free: each cell predicts class logits, its distances to the box sides (l, t, r, b, in strides,
  *linear*, so an 8-bit output grid spends its codes uniformly on pixels: 1/127 of the range, ~0.3 px here)
  and a centerness logit; decoding is a few numpy lines on the host, identical for every target.
- One 1x1 head conv writes all K + 5 channels, so the head is the model's last quantizable layer and gets the
  8-bit output quantizer (DESIGN §2, ``output_bits``) like a classifier's logits; the bundle's single named
  output is that tensor, split by channel on the host (``sdk.detection.boxes.decode``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sdk.detection.boxes import HEAD_EXTRA, DetectParams
from sdk.models._registry import register_model
from sdk.models.layers import ConvBNAct
from sdk.models.mobilenet import InvertedResidual, _make_divisible
from sdk.models.resnet_cifar import CifarBasicBlock, _init

__all__ = ["Detector", "fcos_mobilenet_v2", "fcos_resnet8", "PRIOR_PROB"]

PRIOR_PROB = 0.01  # initial foreground probability of every cell (focal-loss prior, Lin et al. 2017)
DETECT_INPUT = (1, 3, 64, 64)


class Detector(nn.Module):
    """``backbone`` (stride ``stride``, ``channels`` out) -> two 3x3 conv-BN-ReLU -> 1x1 head (K + 5 ch).

    The output (N, K + 5, H/stride, W/stride) holds K class logits, l/t/r/b distances in strides and a
    centerness logit per cell (``sdk.detection.boxes`` decodes it).
    """

    task = "detect"

    def __init__(
        self, backbone: nn.Module, channels: int, num_classes: int, *, stride: int = 8, neck: int = 64
    ):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.stride = stride
        self.backbone = backbone
        self.neck = nn.Sequential(ConvBNAct(channels, neck, 3), ConvBNAct(neck, neck, 3))
        self.head = nn.Conv2d(neck, num_classes + HEAD_EXTRA, 1)
        nn.init.normal_(self.head.weight, std=0.01)
        with torch.no_grad():
            bias = torch.zeros(num_classes + HEAD_EXTRA)
            bias[:num_classes] = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
            bias[num_classes : num_classes + 4] = 1.0  # one stride to every side: a plausible first box
            self.head.bias.copy_(bias)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.neck(self.backbone(x)))

    def params(self, **overrides: float) -> DetectParams:
        """The decoding parameters of this detector (thresholds overridable)."""
        return DetectParams(num_classes=self.num_classes, stride=self.stride, **overrides)  # type: ignore[arg-type]


def _mobilenet_v2_s8(in_channels: int, width: float) -> tuple[nn.Sequential, int]:
    """MobileNetV2's stem and inverted residuals up to stride 8 (the paper's first three stages)."""
    cin = _make_divisible(32 * width)
    layers: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2)):
        cout = _make_divisible(c * width)
        for i in range(n):
            layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
            cin = cout
    return nn.Sequential(*layers), cin


def _resnet_s8(in_channels: int, depth: int) -> tuple[nn.Sequential, int]:
    """A CIFAR-style ResNet (16/32/64 channels, ``depth`` basic blocks per stage) behind a stride-2 stem."""
    layers: list[nn.Module] = [ConvBNAct(in_channels, 16, 3, 2)]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(depth):
            layers.append(CifarBasicBlock(cin, cout, stride if i == 0 else 1))
            cin = cout
    return nn.Sequential(*layers), cin


@register_model("fcos_mobilenet_v2", input_shape=DETECT_INPUT, task="detect")
def fcos_mobilenet_v2(num_classes: int = 5, *, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    """FCOS-style detector on MobileNetV2 to stride 8 (~0.1M parameters at width 1.0, 5 classes)."""
    backbone, channels = _mobilenet_v2_s8(in_channels, width)
    model = Detector(backbone, channels, num_classes)
    for m in model.backbone.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
    return model


@register_model("fcos_resnet8", input_shape=DETECT_INPUT, task="detect")
def fcos_resnet8(num_classes: int = 5, *, in_channels: int = 3, depth: int = 1) -> nn.Module:
    """FCOS-style detector on a ResNet-8 (one basic block per stage; ``depth`` 3 = ResNet-20's stages)."""
    backbone, channels = _resnet_s8(in_channels, depth)
    _init(backbone)
    return Detector(backbone, channels, num_classes)
