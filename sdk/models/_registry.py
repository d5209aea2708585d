"""The model zoo registry: builders by name, plus the input shape each expects by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from sdk._registry import Registry

__all__ = [
    "MODELS",
    "TASKS",
    "ModelBuilder",
    "register_model",
    "create",
    "names",
    "default_input_shape",
    "task",
]

TASKS = ("classify", "detect")

ModelBuilder = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelBuilder)

MODELS: Registry[ModelBuilder] = Registry("model")
_INPUT_SHAPES: dict[str, tuple[int, int, int, int]] = {}
_TASKS: dict[str, str] = {}


def register_model(
    name: str, *, input_shape: tuple[int, int, int, int] = (1, 3, 224, 224), task: str = "classify"
) -> Callable[[F], F]:
    """Register a builder ``fn(num_classes, *, in_channels) -> nn.Module`` under ``name``.

    ``input_shape`` is the (N, C, H, W) the model was designed for; tests and examples may use smaller H, W.
    ``task`` (one of ``TASKS``) says what its output means: class logits or a detection head.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def wrap(fn: F) -> F:
        MODELS.register(name, fn)
        _INPUT_SHAPES[name] = tuple(input_shape)  # type: ignore[assignment]
        _TASKS[name] = task
        return fn

    return wrap


def create(name: str, **kwargs: object) -> nn.Module:
    """Build the zoo model ``name``; unknown names raise InputError with close matches."""
    return MODELS.get(name)(**kwargs)


def names() -> list[str]:
    """Every registered model name, sorted."""
    return MODELS.names()


def default_input_shape(name: str, *, in_channels: int | None = None) -> tuple[int, int, int, int]:
    """The (N, C, H, W) ``name`` was designed for, e.g. (1, 3, 32, 32) for resnet20."""
    n, c, h, w = _INPUT_SHAPES[MODELS.resolve(name)]
    return (n, c if in_channels is None else in_channels, h, w)


def task(name: str) -> str:
    """What model ``name`` does: ``"classify"`` or ``"detect"``."""
    return _TASKS[MODELS.resolve(name)]
