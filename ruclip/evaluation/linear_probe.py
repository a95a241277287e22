"""Linear probes on frozen image latents (scikit-learn's LogisticRegression, L-BFGS).

protocol 'clip' (default), the CLIP paper's: the L2 regularisation C is chosen on a validation
set (the dataset's own, or a seeded stratified part of train) by a log-spaced sweep over 1e-6 to 1e6
refined by halving the step around the best value, then the probe is refit on train + validation.
protocol 'simple', the RuCLIP README's example: sklearn's defaults (C=1), max_iter=1000, fit on train.
"""
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .._optional import require

PROTOCOLS = ('clip', 'simple')
COARSE_C = tuple(10.0 ** e for e in range(-6, 7, 2))  # 1e-6 ... 1e6
REFINE_STEPS = 3  # halvings of the log10 step around the best C
MAX_ITER = 1000


@dataclass
class ProbeResult:
    predictions: np.ndarray  # [n_test] predicted class index
    scores: np.ndarray  # [n_test, n_classes] decision function
    c: float  # the regularisation the final probe used
    sweep: List[Tuple[float, float]]  # (C, validation accuracy) tried, in order
    classes: np.ndarray  # the class index of each column of scores


def fit_probe(train_x, train_y, test_x, protocol: str = 'clip', val_x=None, val_y=None,
              val_fraction: float = 0.2, seed: int = 0, c_values=COARSE_C) -> ProbeResult:
    """Fit a probe on (train_x, train_y) (and the validation set) and predict test_x."""
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {list(PROTOCOLS)}, got {protocol!r}')
    linear_model = require('sklearn.linear_model', 'eval', 'the linear probe')
    train_x, train_y = np.asarray(train_x, dtype=np.float64), np.asarray(train_y)
    test_x = np.asarray(test_x, dtype=np.float64)
    if protocol == 'simple':
        probe = linear_model.LogisticRegression(max_iter=MAX_ITER).fit(train_x, train_y)
        return ProbeResult(probe.predict(test_x), _scores(probe, test_x), 1.0, [], probe.classes_)
    if val_x is None:
        train_x, train_y, val_x, val_y = _split(train_x, train_y, val_fraction, seed)
    val_x, val_y = np.asarray(val_x, dtype=np.float64), np.asarray(val_y)
    sweep = []

    def accuracy(c: float) -> float:
        probe = linear_model.LogisticRegression(C=c, max_iter=MAX_ITER).fit(train_x, train_y)
        score = float((probe.predict(val_x) == val_y).mean())
        sweep.append((c, score))
        return score

    scores = [accuracy(c) for c in c_values]
    low, high = np.log10(min(c_values)), np.log10(max(c_values))
    best = float(np.log10(c_values[int(np.argmax(scores))]))
    step = (np.log10(c_values[1]) - np.log10(c_values[0])) / 2 if len(c_values) > 1 else 0
    best_score = max(scores)
    for _ in range(REFINE_STEPS if step else 0):
        for candidate in (best - step, best + step):
            if low <= candidate <= high:  # the sweep stays in the range
                score = accuracy(10.0 ** candidate)
                if score > best_score:
                    best, best_score = candidate, score
        step /= 2
    c = 10.0 ** best
    probe = linear_model.LogisticRegression(C=c, max_iter=MAX_ITER).fit(
        np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]))
    return ProbeResult(probe.predict(test_x), _scores(probe, test_x), c, sweep, probe.classes_)


def _scores(probe, x) -> np.ndarray:
    """[n, n_classes] scores in the probe's class order (a binary probe's single column made two)."""
    scores = probe.decision_function(x)
    return np.stack([-scores, scores], axis=1) / 2 if scores.ndim == 1 else scores


def _split(x, y, fraction: float, seed: int):
    """A stratified split of (x, y): (train_x, train_y, val_x, val_y), each class in both where it has 2+ items."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        if len(members) > 1:
            val[members[:max(1, int(round(fraction * len(members))))]] = True
    return x[~val], y[~val], x[val], y[val]
