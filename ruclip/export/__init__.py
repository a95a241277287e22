"""Exports for deployment elsewhere: ONNX graphs (`ruclip[onnx]`) and a Hugging Face transformers
CLIPModel (`ruclip[hf]`). The optional packages are imported when an export runs."""
from .hf import export_hf, to_transformers
from .onnx import OnnxCLIP, export_onnx

__all__ = ['export_onnx', 'OnnxCLIP', 'export_hf', 'to_transformers']
