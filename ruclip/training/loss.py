"""CLIP's contrastive loss, with rows of one group (one caption, one class) as positives of each
other, over the whole global batch when several processes train together."""
import math

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = math.log(100)  # CLIP clamps its temperature so that logits are at most 100 x cosine


def clip_loss(image_latents: torch.Tensor, text_latents: torch.Tensor, logit_scale: torch.Tensor,
              groups: torch.Tensor, all_image_latents: torch.Tensor = None, all_text_latents: torch.Tensor = None,
              all_groups: torch.Tensor = None) -> torch.Tensor:
    """The symmetric cross-entropy of CLIP on L2-normalised latents, image->text and text->image.

    image_latents, text_latents: [n, dim] of this process's rows; groups: [n] int, rows with one
    group are positives (the target is spread evenly over them, so one positive per row gives
    CLIP's loss exactly). all_*: the whole global batch [N, dim] / [N], gathered with gradients
    (gather_with_grad), this process's rows among them; None on one process. Returns the mean over
    this process's rows of both directions' losses, halved: averaged over processes (as DDP averages
    gradients) it is the loss of one process holding the whole batch.
    """
    if all_image_latents is None:
        all_image_latents, all_text_latents, all_groups = image_latents, text_latents, groups
    scale = logit_scale.exp()
    logits_per_image = scale * image_latents @ all_text_latents.t()  # [n, N]
    logits_per_text = scale * text_latents @ all_image_latents.t()  # [n, N]
    positive = (groups[:, None] == all_groups[None, :]).float()  # [n, N]
    target = positive / positive.sum(dim=1, keepdim=True)
    image_to_text = -(target * F.log_softmax(logits_per_image, dim=1)).sum(dim=1)  # [n]
    text_to_image = -(target * F.log_softmax(logits_per_text, dim=1)).sum(dim=1)  # [n]
    return (image_to_text.mean() + text_to_image.mean()) / 2
