"""Shared test helpers: tiny checkpoints, a stand-in Hub, images, texts, the original ruclip."""
