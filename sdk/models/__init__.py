"""The model zoo: ``create(name)``, ``names()``, and one builder per architecture.

Conventions the quantizer relies on: every activation is an ``nn.ReLU``/``nn.ReLU6`` module (one per use
site), every residual addition is an ``Add`` module, convs followed by BN have no bias, and every model is
torch.fx-traceable and ONNX-exportable.
"""

from __future__ import annotations

from sdk.models._registry import MODELS, TASKS, create, default_input_shape, names, register_model, task
from sdk.models.detector import Detector, fcos_mobilenet_v2, fcos_resnet8
from sdk.models.digits import digits_cnn
from sdk.models.layers import Add
from sdk.models.mobilenet import mobilenet_v2
from sdk.models.resnet import resnet18, resnet50
from sdk.models.resnet_cifar import resnet20

__all__ = [
    "MODELS",
    "TASKS",
    "Add",
    "Detector",
    "create",
    "default_input_shape",
    "digits_cnn",
    "fcos_mobilenet_v2",
    "fcos_resnet8",
    "mobilenet_v2",
    "names",
    "register_model",
    "resnet18",
    "resnet20",
    "resnet50",
    "task",
]
