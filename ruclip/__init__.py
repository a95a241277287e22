"""RuCLIP: Russian CLIP image and text encoders."""
from . import model, predictor, processor
from .hf_export import export_hf, to_transformers
from .model import CLIP
from .onnx_export import OnnxCLIP, export_onnx
from .predictor import Predictor
from .pretrained import MODELS, load
from .processor import RuCLIPProcessor

__all__ = ['processor', 'model', 'predictor', 'CLIP', 'RuCLIPProcessor', 'Predictor', 'MODELS', 'load',
           'export_onnx', 'OnnxCLIP', 'export_hf', 'to_transformers']
__version__ = '0.1.0'
