"""RuCLIP: Russian CLIP image and text encoders.

The table of contents: each public name and the module that defines it. Modules are imported when
a name is first used, so `import ruclip` (and the `ruclip` command's --help) costs no torch import.
"""
from ._lazy import lazy_names

__version__ = '0.2.0'

_WHERE = {
    # the original ruclip 0.0.2's API
    'load': 'pretrained', 'MODELS': 'pretrained', 'CLIP': 'model', 'RuCLIPProcessor': 'processor',
    'Predictor': 'predictor',
    # models
    'describe_models': 'pretrained',
    # images
    'find_images': 'image_files',
    # zero-shot labels and retrieval
    'classify': 'zero_shot',
    'rank': 'retrieval', 'encode_texts': 'retrieval', 'embed_images': 'retrieval', 'Embeddings': 'retrieval',
    # scores from latents, no model needed
    'similarity': 'scores', 'probabilities': 'scores', 'top_k': 'scores', 'rank_latents': 'scores',
    'TopK': 'scores', 'Ranking': 'scores',
    # pictures [plot]
    'similarity_heatmap': 'plots', 'probability_bars': 'plots', 'label_grid': 'plots',
    # exports [onnx] [hf]
    'export_onnx': 'export', 'OnnxCLIP': 'export', 'export_hf': 'export', 'to_transformers': 'export',
    # benchmarks [eval]
    'evaluate_zeroshot': 'evaluation', 'evaluate_linear_probe': 'evaluation', 'evaluate_retrieval': 'evaluation',
    'text_embeddings': 'evaluation',
    # search a photo library [search] [faiss] [serve]
    'ImageIndex': 'search',
    # fine-tuning [train]
    'finetune': 'training',
}
_MODULES = ['model', 'processor', 'predictor']  # the original exported these modules by name

__all__ = _MODULES + list(_WHERE)

__getattr__, __dir__ = lazy_names(__name__, _WHERE, _MODULES)
