"""Evaluation of RuCLIP models [eval]: zero-shot classification, linear probes and retrieval on the
RuCLIP table's datasets and your own, with shipped Russian class names and templates.

    split = load_split('cifar10', root)              # datasets.py, local.py
    record = evaluate_zeroshot(predictor, split, model='ruclip-vit-base-patch32-224')   # harness.py
    write_result(record, 'cifar10.json'); print(report_table(read_results([...])))      # results.py

Names are imported when first used (this package's modules need torch, sklearn, torchvision).
"""
import importlib

_WHERE = {
    'load_split': 'datasets', 'EvalSplit': 'datasets', 'DATASETS': 'datasets', 'dataset_names': 'datasets',
    'evaluate_zeroshot': 'harness', 'evaluate_linear_probe': 'harness', 'evaluate_retrieval': 'harness',
    'text_embeddings': 'harness',
    'zero_shot_weights': 'classifier', 'image_features': 'features', 'fit_probe': 'linear_probe',
    'class_names': 'prompts', 'templates': 'prompts', 'english_names': 'prompts', 'shipped_stems': 'prompts',
    'write_clip_benchmark_files': 'prompts',
    'write_result': 'results', 'read_results': 'results', 'report_table': 'results', 'published': 'results',
    'confusion_figure': 'plots', 'load_ruclip': 'clip_benchmark', 'register': 'clip_benchmark',
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{_WHERE[name]}'), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
