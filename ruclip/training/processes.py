"""The processes of one training run: torchrun's environment read once, the process group, and
the collective operations the loop needs (gather with gradients, mean, barrier)."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """rank and world_size of this process (0 and 1 without torchrun); device: where it trains."""
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # the process group was made by start_processes, and close() ends it

    @property
    def is_main(self) -> bool:
        """The process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """[n, ...] of each process -> [world_size * n, ...], in rank order, with gradients flowing
        back to each process's own rows (open_clip's gather_with_grad)."""
        if not self.distributed:
            return tensor
        return _GatherWithGrad.apply(tensor.contiguous())

    def mean(self, value: float) -> float:
        """The mean of `value` over the processes."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast_error(self, message: str) -> str:
        """The main process's `message` ('' for none) on every process, so all stop together."""
        if not self.distributed:
            return message
        box = [message]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @property
    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == 'nccl' else torch.device('cpu')


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each process the sum over processes of the gradient of its
    own rows (all_reduce then a slice: gloo has no reduce_scatter)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.rows = tensor.shape[0]
        return torch.cat(parts)  # [world_size * n, ...]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def start_processes(device=None) -> Processes:
    """The Processes of this run: under torchrun (WORLD_SIZE > 1) the default process group, made
    here unless it exists (gloo on CPUs, NCCL on GPUs, each process on GPU LOCAL_RANK); else one."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return Processes(0, 1, torch.device(device) if device is not None else _default_device())
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if device is None:
        device = torch.device('cuda', local_rank) if torch.cuda.is_available() else torch.device('cpu')
    device = torch.device(device)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', local_rank)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    return Processes(dist.get_rank(), dist.get_world_size(), device, owns_group)


def _default_device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
