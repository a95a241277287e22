"""Fine-tuning RuCLIP on your own image-caption pairs or classes [train].

finetune() runs one training run (full, locked image or text tower, last blocks, projections only,
LoRA) on one process or under torchrun, writes the result as a checkpoint folder that ruclip.load
takes, and returns a FinetuneReport. `ruclip finetune` is its command line; docs/training.md the guide.
"""
from .data import Pairs, read_pairs
from .loop import FinetuneReport, TrainingDiverged, finetune
from .loss import clip_loss
from .options import TrainingOptions

__all__ = ['finetune', 'FinetuneReport', 'TrainingDiverged', 'TrainingOptions', 'Pairs', 'read_pairs', 'clip_loss']
