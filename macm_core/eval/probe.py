"""A linear probe: how well is the moving limb linearly readable from a representation?

The probe compares representations of the same clips (encoder features of the frames,
of the rendered body, the fitted SMPL parameters) by how well a multinomial logistic
regression reads the clip's moving limb and side from them:

* ``limb_label`` / ``limb_labels``: the target class of a clip, from its first labelled
  segment ("left arm" for a left hand or arm, "right leg" for a foot or leg, "head",
  "torso", "whole body"); ``side_part`` splits a class into (side, limb);
* ``smpl_features``: fixed-size features of an SMPL keyframe sequence (per-joint rotation
  speed, rotation spread, mean rotation);
* ``pool_keyframes``: encoder tokens pooled over the keyframes, over the whole image or
  per grid cell;
* ``fit_probe``: the probe itself (standardised features, L-BFGS, L2 penalty);
  ``run_probe`` chooses the penalty by k-fold cross-validation on the training split and
  predicts the test split; ``limb_side_accuracy`` scores the limb and the side apart.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from smplx.lbs import batch_rodrigues

from ..motion.encoder import axis_angle_to_6d

# the limb a part belongs to (hand with arm, foot with leg)
LIMB_GROUP: dict[str, str] = {"hand": "arm", "arm": "arm", "foot": "leg", "leg": "leg"}
STRENGTHS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)


def limb_label(part: str, side: str | None) -> str:
    """The probe class of a segment: '<side> arm' / '<side> leg', 'whole body', or the part."""
    if part in LIMB_GROUP:
        return f"{side} {LIMB_GROUP[part]}"
    return "whole body" if part == "body" else part


def limb_labels(segments: pd.DataFrame, clip_ids: Iterable[str]) -> list[str]:
    """``limb_label`` of each clip's first labelled segment (lowest ``segment``)."""
    first = segments.sort_values("segment").groupby("clip_id").first()
    return [limb_label(first.loc[c, "part"], first.loc[c, "side"]) for c in clip_ids]


def side_part(label: str) -> tuple[str | None, str]:
    """("left", "arm") for "left arm", (None, "whole body") for an unsided label."""
    side, _, limb = label.partition(" ")
    return (side, limb) if side in ("left", "right") else (None, label)


def smpl_features(global_orient: np.ndarray, body_pose: np.ndarray, keyframes: np.ndarray,
                  fps: float) -> np.ndarray:
    """(N, 24 + 24 + 23 + 23 * 6) features of N SMPL keyframe sequences.

    global_orient (N, K, 3) and body_pose (N, K, 69): axis-angle per keyframe; keyframes
    (N, K): their frame numbers; fps: frames per second.  Per joint (root included): the
    mean and the largest rotation speed between consecutive keyframes (rad/s); per body
    joint: the spread of its rotation over the keyframes (std of the 6D rotation, averaged
    over its 6 values) and its mean 6D rotation.
    """
    n, k = body_pose.shape[:2]
    pose = torch.as_tensor(np.concatenate([global_orient, body_pose], axis=-1),
                           dtype=torch.float32).reshape(n, k, -1, 3)
    rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(n, k, -1, 3, 3)
    rel = rot[:, :-1].transpose(-1, -2) @ rot[:, 1:]
    angle = torch.arccos(((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0))
    seconds = torch.as_tensor(np.maximum(np.diff(keyframes, axis=1), 1) / fps, dtype=torch.float32)
    speed = angle / seconds[..., None]                                    # (n, k-1, 24) rad/s
    six = axis_angle_to_6d(pose[:, :, 1:])                                # body joints only: (n, k, 23, 6)
    return torch.cat([speed.mean(1), speed.amax(1), six.std(1).mean(-1), six.mean(1).reshape(n, -1)],
                     1).numpy()


def pool_keyframes(tokens: np.ndarray, grid: int | None = None) -> np.ndarray:
    """Encoder tokens (N, T, D) pooled over the keyframes.

    grid None: the mean over all T tokens, (N, D); grid g: T holds keyframes x g*g grid
    cells (cell-major within a keyframe) and each cell is averaged over the keyframes,
    (N, g*g*D), so that where something is in the picture is kept.
    """
    x = np.asarray(tokens, dtype=np.float32)
    if grid is None:
        return x.mean(1)
    cells = grid ** 2
    return x.reshape(x.shape[0], -1, cells, x.shape[-1]).mean(1).reshape(x.shape[0], -1)


def fit_probe(x, target: torch.Tensor, strength: float,
              num_classes: int) -> Callable[[np.ndarray], torch.Tensor]:
    """Multinomial logistic regression on standardised features; returns ``predict``.

    x (N, D) features; target (N,) class indices < ``num_classes``; strength: the L2
    penalty on the weights.  The weights start at zero and L-BFGS (strong Wolfe line
    search, at most 100 iterations) minimises the cross-entropy plus the penalty, so a fit
    is deterministic.  ``predict(z)`` gives the class indices of (M, D) features.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    linear = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.zeros_(linear.weight), torch.nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=100, history_size=10,
                            line_search_fn="strong_wolfe")
    xs = (x - mu) / sd

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(xs), target) + strength * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)

    def predict(z) -> torch.Tensor:
        with torch.no_grad():
            return linear((torch.as_tensor(z, dtype=torch.float32) - mu) / sd).argmax(1)
    return predict


def cv_folds(size: int, seed: int, k: int = 3) -> list[np.ndarray]:
    """min(k, size) folds of a seeded permutation of ``range(size)``."""
    return np.array_split(np.random.default_rng(seed).permutation(size), min(k, size))


@dataclass
class ProbeResult:
    """The penalty chosen by cross-validation, every penalty's CV accuracy, and the
    test predictions of the probe refitted on the whole training split with it."""
    strength: float
    cv_accuracy: dict[float, float]
    predicted: np.ndarray


def run_probe(x_train, y_train: torch.Tensor, x_test, *, num_classes: int,
              strengths: Sequence[float] = STRENGTHS, seed: int = 0, folds: int = 3) -> ProbeResult:
    """Choose the L2 penalty by ``folds``-fold CV on the training split, refit, predict.

    The penalty with the best CV accuracy wins, the stronger one on a tie.
    """
    size = len(y_train)
    split = cv_folds(size, seed, folds)
    cv = {}
    for strength in strengths:
        hits = []
        for fold in split:
            train_idx = np.setdiff1d(np.arange(size), fold)
            predict = fit_probe(x_train[train_idx], y_train[train_idx], strength, num_classes)
            hits.append((predict(x_train[fold]) == y_train[fold]).numpy())
        cv[strength] = np.concatenate(hits).mean()
    best = max(strengths, key=lambda s: (cv[s], s))
    predicted = fit_probe(x_train, y_train, best, num_classes)(x_test).numpy()
    return ProbeResult(best, cv, predicted)


def limb_side_accuracy(predicted: Sequence[int], truth: Sequence[int],
                       classes: Sequence[str]) -> tuple[float, float]:
    """(limb accuracy, side accuracy) of predicted class indices against the true ones.

    limb: the share whose limb is right, side ignored; side: among the clips whose true
    class has a side, the share predicted with that side (NaN when none has one).
    """
    pairs = [(side_part(classes[p]), side_part(classes[t])) for p, t in zip(predicted, truth)]
    sided = np.array([t[0] is not None for _, t in pairs], dtype=bool)
    side_ok = np.array([p[0] == t[0] for p, t in pairs], dtype=bool)
    limb_ok = np.array([p[1] == t[1] for p, t in pairs], dtype=bool)
    return limb_ok.mean(), (side_ok[sided].mean() if sided.any() else np.nan)
