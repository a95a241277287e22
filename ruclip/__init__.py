"""RuCLIP: Russian CLIP image and text encoders."""
from . import model, predictor, processor
from .model import CLIP
from .predictor import Predictor
from .pretrained import MODELS, load
from .processor import RuCLIPProcessor

__all__ = ['processor', 'model', 'predictor', 'CLIP', 'RuCLIPProcessor', 'Predictor', 'MODELS', 'load']
__version__ = '0.1.0'
