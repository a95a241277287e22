"""Evaluation of RuCLIP models [eval]: zero-shot classification, linear probes and retrieval on the
RuCLIP table's datasets and your own, with shipped Russian class names and templates.

    split = load_split('cifar10', root)              # datasets.py, local.py
    record = evaluate_zeroshot(predictor, split, model='ruclip-vit-base-patch32-224')   # harness.py
    write_result(record, 'cifar10.json'); print(report_table(read_results([...])))      # results.py
    record = evaluate_protocol(predictor, 'xm3600-immich', root)    # protocols.py: the shared Russian benchmarks

Names are imported when first used (this package's modules need torch, sklearn, torchvision).
"""
from .._lazy import lazy_names

_WHERE = {
    'load_split': 'datasets', 'EvalSplit': 'datasets', 'DATASETS': 'datasets', 'dataset_names': 'datasets',
    'evaluate_zeroshot': 'harness', 'evaluate_linear_probe': 'harness', 'evaluate_retrieval': 'harness',
    'text_embeddings': 'harness',
    'zero_shot_weights': 'classifier', 'image_features': 'features', 'fit_probe': 'linear_probe',
    'class_names': 'prompts', 'templates': 'prompts', 'english_names': 'prompts', 'shipped_stems': 'prompts',
    'write_clip_benchmark_files': 'prompts',
    'write_result': 'results', 'read_results': 'results', 'report_table': 'results', 'published': 'results',
    'confusion_figure': 'plots', 'load_ruclip': 'clip_benchmark', 'register': 'clip_benchmark',
    'load_benchmark': 'benchmarks', 'evaluate_protocol': 'protocols', 'PROTOCOLS': 'protocols',
    'published_peers': 'protocols', 'load_peer': 'models', 'DualEncoder': 'models',
    'run_scoreboard': 'scoreboard', 'scoreboard_table': 'scoreboard',
}
__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
