"""Serve RuCLIP to other programs: an OpenAI-compatible embeddings API with dynamic batching,
zero-shot labels and ranking, and the search page of an index, as one ASGI app ([serve]:
FastAPI and uvicorn). `ruclip serve` runs it; docs/serving.md is the guide."""
from .app import create_app

__all__ = ['create_app']
