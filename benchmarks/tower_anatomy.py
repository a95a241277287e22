"""Where the image tower's time goes: its matmuls, its attention and everything else.

    python benchmarks/tower_anatomy.py                            # base-patch32-384, fp32 and bf16
    python benchmarks/tower_anatomy.py --models all             # the six, ~6 minutes on 2 cores

One `encode_image` call is recorded op by op (a TorchDispatchMode). Its matmuls (mm, addmm, bmm)
and its attention kernels are then replayed alone, on inputs of the same shapes, strides and dtypes,
and timed beside the whole tower and a plain n^3 matmul (n = 2048 on CPU, 8192 on GPU), in
interleaved rounds (best kept); the summary at the end refers every percentage to the best plain
matmul seen in the whole run.
"The rest" is the tower's time minus the two: LayerNorm, bias and residual adds, the activation,
copies, and the gaps between ops. The batch is the one `ruclip.Predictor` picks for the dtype.

The last line of each model answers the question of issue #3's tower target: if attention and the
rest cost nothing, what fraction of the plain matmul's rate would the tower reach, and how fast
would they have to be for the tower to reach 85% of it.
"""
import argparse
import os
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (  # noqa: E402
    ARCHITECTURES, DTYPES, build_checkpoint, interleaved, machine, plain_matmul, train_tokenizer)

import ruclip  # noqa: E402

aten = torch.ops.aten
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
# inference mode shows a dispatch mode the composite ops (linear, matmul, sdpa), not their kernels
MATMULS = {aten.linear.default, aten.matmul.default, aten.mm.default, aten.addmm.default, aten.bmm.default}
ATTENTION = {aten.scaled_dot_product_attention.default, aten._scaled_dot_product_flash_attention_for_cpu.default,
             aten._scaled_dot_product_flash_attention.default,
             aten._scaled_dot_product_efficient_attention.default,
             aten._scaled_dot_product_cudnn_attention.default}


class Recorder(TorchDispatchMode):
    """Keeps (op, args) of every matmul and attention call, tensors replaced by their layouts."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, op, types, args=(), kwargs=None):
        if op in MATMULS or op in ATTENTION:
            self.calls.append((op, [_layout(a) for a in args], {k: _layout(v) for k, v in (kwargs or {}).items()}))
        return op(*args, **(kwargs or {}))


def _layout(a):
    return ('tensor', a.shape, a.stride(), a.dtype, a.device) if isinstance(a, torch.Tensor) else a


def _is_layout(a) -> bool:
    return isinstance(a, tuple) and len(a) == 5 and a[0] == 'tensor'


def flops(op, args) -> int:
    shapes = [a[1] for a in args if _is_layout(a)]
    if op in ATTENTION:  # q [B, H, Tq, D], k [B, H, Tk, D]: two matmuls of Tq x Tk x D per head
        (b, h, tq, d), tk = shapes[0], shapes[1][2]
        return 4 * b * h * tq * tk * d
    if op is aten.linear.default:  # input [.., K], weight [N, K]
        return 2 * shapes[0].numel() * shapes[1][0]
    a, b = shapes[-2:]
    return 2 * a.numel() * b[-1]  # [.., M, K] @ [.., K, N], mm and bmm alike


def replay(calls):
    """(fn running every call once on fresh inputs, its FLOPs)."""
    def fresh(a):
        if not _is_layout(a):
            return a
        _, shape, stride, dtype, device = a
        return torch.empty_strided(shape, stride, dtype=dtype, device=device).normal_()
    ready = [(op, [fresh(a) for a in args], {k: fresh(v) for k, v in kwargs.items()}) for op, args, kwargs in calls]

    def fn():
        for op, args, kwargs in ready:
            op(*args, **kwargs)
    return fn, sum(flops(op, args) for op, args, _ in calls)


def anatomy(model, processor, device, repeats, batch=None, plain_size=None):
    """batch: images per encode_image; None: the batch Predictor picks for the device.
    plain_size: n of the reference n^3 matmul; None: plain_matmul's (2048 on CPU, 8192 on GPU)."""
    dtype_name = DTYPE_NAMES[model.dtype]
    batch = batch or ruclip.Predictor(model, processor, device, quiet=True).batch_size
    size = model.config.image_resolution
    pixels = torch.randn(batch, 3, size, size, device=device, dtype=model.dtype)
    with torch.inference_mode():
        recorder = Recorder()
        with recorder:
            model.encode_image(pixels)
        matmul_calls = [c for c in recorder.calls if c[0] in MATMULS]
        attention_calls = [c for c in recorder.calls if c[0] in ATTENTION]
        parts = {'tower': (lambda: model.encode_image(pixels), None), 'matmuls': replay(matmul_calls),
                 'attention': replay(attention_calls), 'plain': plain_matmul(dtype_name, device, **({'n': plain_size, 'count': 1} if plain_size else {}))}
        runs = interleaved({name: fn for name, (fn, _) in parts.items()}, repeats + 1)  # round one warms up
    best = {name: seconds for name, (seconds, _) in runs.items()}
    plain_rate = parts['plain'][1] / best['plain']
    seconds = {name: best[name] for name in ('tower', 'matmuls', 'attention')}
    seconds['rest'] = max(seconds['tower'] - seconds['matmuls'] - seconds['attention'], 0.0)
    total_flops = parts['matmuls'][1] + parts['attention'][1]
    return dict(dtype=dtype_name, batch=batch, seconds=seconds, plain_rate=plain_rate,
                flops={'tower': total_flops, 'matmuls': parts['matmuls'][1], 'attention': parts['attention'][1]})


def report(result, plain) -> str:
    """result: what anatomy() returns; plain: the matmul rate the percentages refer to."""
    seconds, flops = result['seconds'], result['flops']
    tower_rate = flops['tower'] / seconds['tower']
    lines = [f'{result["model"]} {result["dtype"]}, batch {result["batch"]}: tower {seconds["tower"] * 1e3:.0f} ms, '
             f'{tower_rate / 1e9:.0f} GFLOP/s = {tower_rate / plain:.0%} of a plain matmul ({plain / 1e9:.0f} GFLOP/s)']
    parts = (('matmuls', ''), ('attention', ''), ('rest', ' (LayerNorm, bias, residual, activation, copies)'))
    for part, what in parts:
        rate = flops[part] / seconds[part] if part in flops else None
        rate_text = f' at {rate / 1e9:.0f} GFLOP/s = {rate / plain:.0%} of plain' if rate else ''
        lines.append(f'  {part:9s} {seconds[part] * 1e3:7.1f} ms ({seconds[part] / seconds["tower"]:4.0%} of the tower)'
                     f'{rate_text}{what}')
    budget = flops['tower'] / (0.85 * plain) - seconds['matmuls']
    lines.append(f'  ceiling: with attention and the rest free the tower would run at '
                 f'{flops["tower"] / seconds["matmuls"] / plain:.0%} of plain; '
                 f'at 85% they would have {budget * 1e3:.1f} ms '
                 f'({budget / (seconds["attention"] + seconds["rest"]):.0%} of their time now)' if budget > 0 else
                 '  ceiling: the matmuls alone already take longer than 85% of plain allows')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', default='ruclip-vit-base-patch32-384', help="comma-separated names or 'all'")
    parser.add_argument('--dtypes', default='fp32,bf16')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds, best kept (default 5)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--workdir', default=str(Path.home() / '.cache' / 'ruclip-bench'))
    args = parser.parse_args(argv)
    names = list(ARCHITECTURES) if args.models == 'all' else args.models.split(',')
    for name in names:
        if name not in ARCHITECTURES:
            parser.error(f'Unknown model {name!r}; choose from {list(ARCHITECTURES)} or all')
    workdir = Path(args.workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    bpe = train_tokenizer(workdir)
    print(f'machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'1-minute load average {os.getloadavg()[0]:.2f}', flush=True)
    results = []
    for name in names:
        folder = build_checkpoint(workdir, name, bpe)
        for dtype in args.dtypes.split(','):
            model, processor = ruclip.load(str(folder), device=args.device, dtype=DTYPES[dtype])
            results.append(dict(anatomy(model, processor, args.device, args.repeats), model=name))
            print(report(results[-1], results[-1]['plain_rate']), flush=True)
            del model
    best_plain = {r['dtype']: max(x['plain_rate'] for x in results if x['dtype'] == r['dtype']) for r in results}
    print(f'\n1-minute load average at the end {os.getloadavg()[0]:.2f}. Against the best plain matmul of the run '
          f'(' + ', '.join(f'{k} {v / 1e9:.0f} GFLOP/s' for k, v in best_plain.items()) + '):\n')
    for r in results:
        print(report(r, best_plain[r['dtype']]))


if __name__ == '__main__':
    main()
