"""Pictures of one classification result: the confusion matrix and per-class recall [plot].

Built without pyplot, as ruclip.plots (a Figure to save with fig.savefig(path)).
"""
import numpy as np

from ..plots import _figure

MAX_TICK_LABELS = 40  # more classes than this: no class names on the matrix's axes


def confusion_figure(record: dict, title=None):
    """The record's confusion matrix (rows normalised to recall) beside its per-class recall bars,
    or only the bars when the record has no matrix (over CONFUSION_MAX_CLASSES classes)."""
    recalls = record.get('per_class_recall')
    if not recalls:
        raise ValueError('this result has no per_class_recall: plot a zero-shot or linear-probe result')
    names = record.get('classnames') or record.get('classes') or [str(i) for i in range(len(recalls))]
    matrix = record.get('confusion_matrix')
    n = len(recalls)
    figure = _figure(figsize=(min(24, 4 + 0.25 * n) * (2 if matrix else 1), min(24, 3 + 0.22 * n)))
    axes = figure.subplots(1, 2 if matrix else 1, squeeze=False)[0]
    if matrix:
        counts = np.asarray(matrix, dtype=np.float64)
        rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        image = axes[0].imshow(rates, cmap='viridis', vmin=0, vmax=1, label='confusion')
        figure.colorbar(image, ax=axes[0], shrink=0.8)
        axes[0].set_xlabel('predicted class')
        axes[0].set_ylabel('true class')
        if n <= MAX_TICK_LABELS:
            axes[0].set_xticks(range(n), names, rotation=90, fontsize=8)
            axes[0].set_yticks(range(n), names, fontsize=8)
    bars = axes[-1]
    values = [np.nan if r is None else r for r in recalls]
    bars.barh(range(n), values, color='tab:blue')
    bars.set_yticks(range(n), names if n <= 4 * MAX_TICK_LABELS else [''] * n, fontsize=7)
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_xlabel('recall (per-class accuracy)')
    figure.suptitle(title or f"{record.get('dataset')} · {record.get('model')} · {record.get('task')}")
    return figure
