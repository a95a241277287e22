"""What a training run steps through: the order of the rows in each epoch, the optimizer and its
learning-rate schedule, and the state a checkpoint holds to continue exactly."""
import math
from typing import List, Optional

import torch

from .options import TrainingOptions


def epoch_order(rows: int, seed: int, epoch: int, templates: Optional[List[str]]):
    """(the rows in epoch `epoch`'s order, the template index of each row): from (seed, epoch) alone."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(rows, generator=generator).tolist()
    template_of = torch.randint(len(templates) if templates else 1, (rows,), generator=generator).tolist()
    return order, template_of


def make_optimizer(trained, options: TrainingOptions) -> torch.optim.Optimizer:
    """AdamW with CLIP's betas and eps, fused where torch has it; weight decay on matrices only (not
    biases, LayerNorms, embeddings or the temperature), as open_clip."""
    decay = [p for name, p in trained if p.ndim >= 2 and 'embedding' not in name]
    no_decay = [p for name, p in trained if not (p.ndim >= 2 and 'embedding' not in name)]
    groups = [dict(params=decay, weight_decay=options.weight_decay), dict(params=no_decay, weight_decay=0.0)]
    groups = [group for group in groups if group['params']]
    try:  # one fused kernel: on CPU 6x faster than the default per-tensor loop (a LiT step is mostly this)
        return torch.optim.AdamW(groups, lr=options.lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a torch or device without the fused AdamW
        return torch.optim.AdamW(groups, lr=options.lr, betas=(0.9, 0.98), eps=1e-6)


def warmup_cosine(optimizer, total_steps: int, warmup: Optional[int]):
    """Linear warm-up over `warmup` steps (default 5% of the run), then cosine decay to zero."""
    warmup = max(1, round(0.05 * total_steps)) if warmup is None else min(warmup, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trained_state(trained) -> dict:
    return {name: p.detach().cpu().clone() for name, p in trained}


def load_trained(trained, state: dict) -> None:
    names = [name for name, _ in trained]
    if sorted(state) != sorted(names):
        raise ValueError(f'the checkpoint holds other trained weights ({len(state)} tensors) than this run '
                         f'trains ({len(names)}): it belongs to another run')
    with torch.no_grad():
        for name, parameter in trained:
            parameter.copy_(state[name])


def restore(state: dict, trained, optimizer, scheduler) -> None:
    load_trained(trained, state['trained'])
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    torch.set_rng_state(state['rng'])
