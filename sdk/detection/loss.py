"""The detector's training loss (FCOS, single level): focal classification, GIoU + L1 boxes, centerness BCE.

A cell is positive for a box when it lies inside the box and within ``center_radius`` strides of its centre
(FCOS "center sampling"); a cell inside several boxes takes the smallest. ``DetectionLoss`` is a plain
callable ``(head_output, targets) -> scalar``, the ``loss_fn`` that ``sdk.train``/``retrain``/``search`` take;
``targets`` is the (N, M, 5) padded batch of ``sdk.detection.data.collate`` (label -1 = padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sdk.detection.boxes import HEAD_EXTRA
from sdk.errors import InputError

__all__ = ["DetectionLoss", "assign"]


def _points(h: int, w: int, stride: int, device: torch.device) -> torch.Tensor:
    """Cell centres (H*W, 2) as (x, y) in input pixels, row-major like the head's flattened output."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


@torch.no_grad()
def assign(
    points: torch.Tensor, targets: torch.Tensor, stride: int, center_radius: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image and cell: (positive mask (N, P), class id (N, P), target ltrb in pixels (N, P, 4))."""
    labels, boxes = targets[..., 0], targets[..., 1:5]  # (N, M), (N, M, 4)
    px, py = points[None, :, None, 0], points[None, :, None, 1]  # (1, P, 1)
    ltrb = torch.stack(
        [
            px - boxes[:, None, :, 0],
            py - boxes[:, None, :, 1],
            boxes[:, None, :, 2] - px,
            boxes[:, None, :, 3] - py,
        ],
        dim=-1,
    )  # (N, P, M, 4)
    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
    r = center_radius * stride
    near = ((px - cx[:, None]).abs() < r) & ((py - cy[:, None]).abs() < r)
    ok = (ltrb.min(dim=-1).values > 0) & near & (labels[:, None, :] >= 0)
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[:, None, :].expand_as(ok)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best = area.argmin(dim=-1)  # (N, P)
    pos = ok.any(dim=-1)
    cls = torch.gather(labels, 1, best).long()
    tgt = torch.gather(ltrb, 2, best[..., None, None].expand(-1, -1, 1, 4)).squeeze(2)
    return pos, cls, tgt


def _giou_loss(pred: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of boxes given as distances (l, t, r, b) from the same point, (P, 4) each."""
    pa = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    ta = (tgt[:, 0] + tgt[:, 2]) * (tgt[:, 1] + tgt[:, 3])
    iw = torch.min(pred[:, 0], tgt[:, 0]) + torch.min(pred[:, 2], tgt[:, 2])
    ih = torch.min(pred[:, 1], tgt[:, 1]) + torch.min(pred[:, 3], tgt[:, 3])
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    union = pa + ta - inter
    ew = torch.max(pred[:, 0], tgt[:, 0]) + torch.max(pred[:, 2], tgt[:, 2])
    eh = torch.max(pred[:, 1], tgt[:, 1]) + torch.max(pred[:, 3], tgt[:, 3])
    enclose = ew * eh + 1e-7
    iou = inter / (union + 1e-7)
    return 1 - (iou - (enclose - union) / enclose)


@dataclass(frozen=True)
class DetectionLoss:
    """FCOS loss for a head of ``num_classes`` + 5 channels at ``stride``; call as ``loss(output, targets)``.

    Terms: sigmoid focal loss (alpha, gamma) over all cells / #positives; GIoU loss on positives weighted by
    their centerness target, plus ``l1_weight`` x L1 of the raw distances in strides (keeps a gradient where
    a predicted distance is negative, which decoding clamps to 0); centerness BCE on positives.
    """

    num_classes: int
    stride: int = 8
    center_radius: float = 1.5
    alpha: float = 0.25
    gamma: float = 2.0
    l1_weight: float = 0.1

    def __call__(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        k = self.num_classes
        if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[1] != k + HEAD_EXTRA:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"detection loss needs the head output (N, {k + HEAD_EXTRA}, H, W), got {got}.")
        if not isinstance(targets, torch.Tensor) or targets.ndim != 3 or targets.shape[-1] != 5:
            got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise InputError(
                "detection targets must be (N, M, 5) rows [label, x1, y1, x2, y2] "
                f"(sdk.detection.data.collate), got {got}."
            )
        n, _, h, w = out.shape
        flat = out.permute(0, 2, 3, 1).reshape(n, h * w, -1)
        cls_logit, dist, ctr_logit = flat[..., :k], flat[..., k : k + 4], flat[..., k + 4]
        targets = targets.to(out.device, torch.float32)
        if targets.numel() and int(targets[..., 0].max()) >= k:
            raise InputError(f"a target label is >= num_classes ({k}); build the detector with more classes.")
        pos, cls, tgt = assign(
            _points(h, w, self.stride, out.device), targets, self.stride, self.center_radius
        )
        num_pos = max(int(pos.sum()), 1)
        onehot = torch.zeros_like(cls_logit)
        onehot[pos] = F.one_hot(cls[pos].clamp(min=0), k).to(onehot.dtype)
        p = torch.sigmoid(cls_logit)
        ce = F.binary_cross_entropy_with_logits(cls_logit, onehot, reduction="none")
        pt = p * onehot + (1 - p) * (1 - onehot)
        a = self.alpha * onehot + (1 - self.alpha) * (1 - onehot)
        loss_cls = (a * (1 - pt) ** self.gamma * ce).sum() / num_pos
        if not pos.any():
            return loss_cls + 0.0 * (dist.sum() + ctr_logit.sum())
        t = tgt[pos]
        lr, tb = t[:, [0, 2]], t[:, [1, 3]]
        ctr_t = torch.sqrt((lr.min(1).values / lr.max(1).values) * (tb.min(1).values / tb.max(1).values))
        d = dist[pos]
        giou = _giou_loss(d.clamp(min=0) * self.stride, t)
        loss_box = (giou * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
        loss_l1 = (d - t / self.stride).abs().mean()
        loss_ctr = F.binary_cross_entropy_with_logits(ctr_logit[pos], ctr_t, reduction="mean")
        return loss_cls + loss_box + self.l1_weight * loss_l1 + loss_ctr
