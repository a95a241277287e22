"""RuCLIP: Russian CLIP image and text encoders."""
from . import model, predictor, processor
from .catalog import describe_models
from .files import find_images
from .hf_export import export_hf, to_transformers
from .model import CLIP
from .onnx_export import OnnxCLIP, export_onnx
from .plots import label_grid, probability_bars, similarity_heatmap
from .predictor import Predictor
from .pretrained import MODELS, load
from .processor import RuCLIPProcessor
from .scores import Ranking, TopK, probabilities, rank_latents, similarity, top_k
from .tasks import Embeddings, classify, embed_images, encode_texts, rank

__all__ = ['processor', 'model', 'predictor', 'CLIP', 'RuCLIPProcessor', 'Predictor', 'MODELS', 'load',
           'classify', 'rank', 'encode_texts', 'embed_images', 'Embeddings',
           'similarity', 'probabilities', 'top_k', 'rank_latents', 'TopK', 'Ranking',
           'similarity_heatmap', 'probability_bars', 'label_grid', 'find_images', 'describe_models',
           'export_onnx', 'OnnxCLIP', 'export_hf', 'to_transformers']
__version__ = '0.1.0'
