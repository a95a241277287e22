"""Metrics against hand-computed values and scikit-learn's implementations; the linear probe's protocols."""
import math

import numpy as np
import pytest

from ruclip.evaluation import metrics
from ruclip.evaluation.linear_probe import fit_probe

sklearn_metrics = pytest.importorskip('sklearn.metrics')


def test_accuracy_and_mean_per_class_recall_differ_on_an_imbalanced_set():
    # 8 items of class 0 (all right), 2 of class 1 (one right): accuracy 0.9, mean per-class recall 0.75
    targets = np.array([0] * 8 + [1, 1])
    logits = np.zeros((10, 2))
    logits[:8, 0] = logits[8, 1] = logits[9, 0] = 1
    found = metrics.classification_metrics(logits, targets)
    assert found['acc1'] == pytest.approx(0.9) and found['mean_per_class_recall'] == pytest.approx(0.75)
    assert math.isnan(found['acc5'])  # under 5 classes, as CLIP_benchmark
    balanced = sklearn_metrics.balanced_accuracy_score(targets, logits.argmax(1))
    assert found['mean_per_class_recall'] == pytest.approx(balanced)


def test_top_k_and_recalls_against_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(200, 7)), rng.integers(0, 7, 200)
    for k in (1, 3, 5):
        assert metrics.top_k_accuracy(logits, targets, k) == pytest.approx(
            sklearn_metrics.top_k_accuracy_score(targets, logits, k=k, labels=range(7)))
    predictions = logits.argmax(1)
    assert metrics.mean_per_class_recall(predictions, targets) == pytest.approx(
        sklearn_metrics.balanced_accuracy_score(targets, predictions))
    assert np.array_equal(metrics.confusion_matrix(predictions, targets, 7),
                          sklearn_metrics.confusion_matrix(targets, predictions, labels=range(7)))
    assert metrics.per_class_recall(predictions, targets, 8)[:7] == pytest.approx(
        sklearn_metrics.recall_score(targets, predictions, average=None, labels=range(7)))
    assert math.isnan(metrics.per_class_recall(predictions, targets, 8)[7])


def test_roc_auc_known_ranking_ties_and_sklearn():
    # positives score 0.9, 0.4; negatives 0.5, 0.1: of the 4 pairs 3 are ordered right
    assert metrics.roc_auc([0.9, 0.5, 0.4, 0.1], [1, 0, 1, 0]) == pytest.approx(0.75)
    assert metrics.roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # a tie counts a half
    rng = np.random.default_rng(1)
    scores, targets = rng.integers(0, 5, 300).astype(float), rng.integers(0, 2, 300)
    assert metrics.roc_auc(scores, targets) == pytest.approx(sklearn_metrics.roc_auc_score(targets, scores))
    with pytest.raises(ValueError, match='both present'):
        metrics.roc_auc([0.1, 0.2], [1, 1])
    two = metrics.classification_metrics(np.stack([-scores, scores], 1), targets)
    assert two['roc_auc'] == pytest.approx(sklearn_metrics.roc_auc_score(targets, scores))


def test_retrieval_recall_with_several_captions_per_image():
    # 3 images; texts 0,1 describe image 0, text 2 image 1, text 3 image 2
    similarity = np.array([[0.9, 0.1, 0.0],   # text 0: image 0 first
                           [0.2, 0.8, 0.1],   # text 1: image 0 second
                           [0.1, 0.3, 0.7],   # text 2: image 1 second
                           [0.0, 0.1, 0.6]])  # text 3: image 2 first
    found = metrics.retrieval_recall(similarity, [0, 0, 1, 2], ks=(1, 2))
    assert found['image_retrieval_recall@1'] == pytest.approx(2 / 4)
    assert found['image_retrieval_recall@2'] == pytest.approx(4 / 4)
    # image -> texts: image 0 ranks text 0 first (hit); image 1: text 1 (0.8) then text 2 (0.3);
    # image 2: text 2 (0.7) then text 3 (0.6)
    assert found['text_retrieval_recall@1'] == pytest.approx(1 / 3)
    assert found['text_retrieval_recall@2'] == pytest.approx(3 / 3)


def test_linear_probe_protocols_learn_separable_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))

    def make(n):
        return np.repeat(centres, n, 0) + 0.8 * rng.normal(size=(3 * n, 16)), np.repeat(np.arange(3), n)

    (train_x, train_y), (test_x, test_y) = make(30), make(20)
    clip = fit_probe(train_x, train_y, test_x)
    assert (clip.predictions == test_y).mean() > 0.9
    tried = [c for c, _ in clip.sweep]
    assert min(tried) == pytest.approx(1e-6) and max(tried) == pytest.approx(1e6) and 7 < len(tried) <= 7 + 6
    assert clip.c in tried
    simple = fit_probe(train_x, train_y, test_x, protocol='simple')
    assert simple.c == 1.0 and simple.sweep == [] and (simple.predictions == test_y).mean() > 0.9
    with pytest.raises(ValueError, match="protocol must be one of"):
        fit_probe(train_x, train_y, test_x, protocol='sgd')


def test_confusion_figure_draws_recall_rates():
    pytest.importorskip('matplotlib')
    from ruclip.evaluation.plots import confusion_figure
    record = {'dataset': 'x', 'model': 'm', 'task': 'zeroshot_classification', 'classnames': ['кот', 'пес', 'конь'],
              'confusion_matrix': [[3, 1, 0], [0, 2, 2], [0, 0, 0]], 'per_class_recall': [0.75, 0.5, None]}
    figure = confusion_figure(record)
    rates = figure.axes[0].get_images()[0].get_array()
    assert np.allclose(rates, [[0.75, 0.25, 0], [0, 0.5, 0.5], [0, 0, 0]])
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ['кот', 'пес', 'конь']
    bars = confusion_figure({k: v for k, v in record.items() if k != 'confusion_matrix'})
    assert len(bars.axes) == 1 and [p.get_width() for p in bars.axes[0].patches][:2] == [0.75, 0.5]
    with pytest.raises(ValueError, match='no per_class_recall'):
        confusion_figure({'metrics': {}})
