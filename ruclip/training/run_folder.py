"""The run folder (--out): what a fine-tuning run writes, each file complete or absent.

    config.json, model.safetensors, bpe.model   the fine-tuned checkpoint, in the Hub layout (written last)
    training_args.json    the manifest: every option, the base model's identity, the data's fingerprints
    training_report.json  the result: steps, losses, validation before and after, the output's identity
    README.md             a short model card
    metrics.jsonl         one line per optimizer step and per validation
    tensorboard/          the same figures as TensorBoard events, when tensorboard is installed
    checkpoints/last.pt   the state to resume from (weights that train, optimizer, schedule, RNG, position)
    checkpoints/best.pt   the trained weights of the best validation (keep_best)

Only files ruclip wrote are ever replaced: a folder that is not empty and holds no run is refused,
and an existing run is continued (resume) or deleted (overwrite) only when asked.
"""
import json
import os
import shutil
from typing import List, Optional

import torch

from .._outputs import PARTIAL, atomic_open, check_export_folder, check_outside, replacing_together
from ..model import CLIP

MODEL_FILES = ('config.json', 'model.safetensors', 'bpe.model')
ARGS, REPORT, CARD, METRICS, CHECKPOINTS = 'training_args.json', 'training_report.json', 'README.md', \
    'metrics.jsonl', 'checkpoints'
RUN_FILES = MODEL_FILES + (ARGS, REPORT, CARD, METRICS)
TENSORBOARD = 'tensorboard'


class RunFolder:
    def __init__(self, out: str):
        self.out = os.path.abspath(out)
        self.last = os.path.join(self.out, CHECKPOINTS, 'last.pt')
        self.best = os.path.join(self.out, CHECKPOINTS, 'best.pt')

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)

    def check(self, model: str, base_folder: str, inputs: List[str], manifest: dict, resume: bool,
              overwrite: bool, differences) -> Optional[dict]:
        """Refuse an --out that would replace something not ours; return the recorded manifest when
        resuming this same run (None: start afresh). differences(recorded) lists what differs."""
        check_export_folder(self.out, model, overwrite=True)  # not a file, the checkpoint, nor the HF cache
        check_outside(self.out, base_folder)
        for source in inputs:
            source = os.path.realpath(source)
            out = os.path.realpath(self.out)
            if source == out or source.startswith(out + os.sep) or out.startswith(source + os.sep):
                raise ValueError(f'--out {self.out} and the input {source} overlap: choose a folder outside the data')
        if not os.path.isdir(self.out) or not os.listdir(self.out):
            return None
        recorded = self._recorded()
        if recorded is None:
            raise ValueError(f'--out {self.out} is not empty and holds no ruclip training run (no {ARGS}); '
                             f'choose a new or empty folder')
        if resume:
            self._remove_partial_files()
            differing = differences(recorded)
            if differing:
                raise ValueError(f'--resume: the run in {self.out} was made with other data or options: '
                                 f'{"; ".join(differing)}; resume with the same ones, or start a new run '
                                 f'(another --out, or --overwrite)')
            return recorded
        if not overwrite:
            raise ValueError(f'--out {self.out} holds a training run already: continue it with --resume, or '
                             f'replace it with --overwrite')
        return None

    def _remove_partial_files(self) -> None:
        """The temporary files a killed run may have left (never a result: see ruclip._outputs)."""
        for folder in (self.out, self.path(CHECKPOINTS)):
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    if PARTIAL in name and os.path.isfile(os.path.join(folder, name)):
                        os.unlink(os.path.join(folder, name))

    def _recorded(self) -> Optional[dict]:
        try:
            with open(self.path(ARGS), encoding='utf-8') as file:
                return json.load(file)
        except (OSError, ValueError):
            return None

    def clear(self) -> None:
        """Delete the files of an earlier run (only those a run writes)."""
        for name in RUN_FILES:
            if os.path.isfile(self.path(name)):
                os.unlink(self.path(name))
        for folder in (CHECKPOINTS, TENSORBOARD):
            shutil.rmtree(self.path(folder), ignore_errors=True)

    def write_json(self, name: str, value: dict) -> None:
        os.makedirs(self.out, exist_ok=True)
        with atomic_open(self.path(name), 'w', encoding='utf-8') as file:
            json.dump(value, file, ensure_ascii=False, indent=2)
            file.write('\n')

    def write_text(self, name: str, text: str) -> None:
        with atomic_open(self.path(name), 'w', encoding='utf-8') as file:
            file.write(text)

    def save_state(self, path: str, state: dict) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_open(path) as file:
            torch.save(state, file)

    def load_state(self, path: str) -> Optional[dict]:
        if not os.path.isfile(path):
            return None
        return torch.load(path, map_location='cpu', weights_only=True)

    def metrics_lines(self, up_to_step: int) -> List[str]:
        """The metrics lines of the steps up to `up_to_step` (a killed run may have written more, or
        half a line): what a resumed run starts its metrics.jsonl from."""
        lines = []
        try:
            with open(self.path(METRICS), encoding='utf-8') as file:
                for line in file:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        break
                    if record.get('step', 0) > up_to_step:
                        break
                    lines.append(line if line.endswith('\n') else line + '\n')
        except OSError:
            pass
        return lines

    def write_model(self, clip: CLIP, base_folder: str) -> None:
        """config.json, model.safetensors and bpe.model, all three or none."""
        from safetensors.torch import save_file

        state_dict = {name: tensor.detach().cpu().contiguous() for name, tensor in clip.state_dict().items()}
        config, weights, bpe = (self.path(name) for name in MODEL_FILES)
        with replacing_together([config, weights, bpe]) as (config_path, weights_path, bpe_path):
            with open(config_path, 'w', encoding='utf-8') as file:
                json.dump(clip.config.to_dict(), file, indent=2)
            save_file(state_dict, weights_path, metadata={'format': 'pt'})
            shutil.copyfile(os.path.join(base_folder, 'bpe.model'), bpe_path)


def model_card(manifest: dict, report: dict) -> str:
    """A short README.md for the fine-tuned checkpoint."""
    options = manifest['options']
    mode = ('LoRA rank {}'.format(options['lora']) if options.get('lora') else
            'locked image tower (LiT)' if options['lock_image'] else
            'locked text tower' if options['lock_text'] else 'full fine-tuning')
    if options.get('unlocked_blocks') is not None:
        mode += f', last {options["unlocked_blocks"]} blocks' if options['unlocked_blocks'] else ', projections only'
    lines = [f'# Fine-tuned RuCLIP: {os.path.basename(manifest["out"])}', '',
             f'Fine-tuned from `{manifest["base_model"]["name"]}` '
             f'(fingerprint {manifest["base_model"]["fingerprint"]}) '
             f'with `ruclip finetune`: {mode}.', '',
             f'- data: {manifest["train"]["source"]} ({report["train_pairs"]} pairs, fingerprint '
             f'{manifest["train"]["fingerprint"][:16]})',
             f'- {options["epochs"]} epochs, global batch {options["batch_size"]}, lr {options["lr"]}, '
             f'seed {options["seed"]}, {report["steps"]} optimizer steps',
             f'- final training loss: {report["final_loss"]:.4f}' if report.get('final_loss') is not None else '',
             ]
    for when in ('before', 'after'):
        metrics = report.get(f'validation_{when}')
        if metrics:
            shown = ', '.join(f'{k} {v:.3f}' for k, v in metrics.items() if isinstance(v, float))
            lines.append(f'- validation {when}: {shown}')
    lines += ['', 'Load it with `ruclip.load(folder)`, or pass the folder as `--model` to any ruclip command; '
                  'evaluate it with `ruclip eval retrieval|zeroshot ... --model FOLDER`. training_args.json and '
                  'training_report.json hold every option and result.', '']
    return '\n'.join(line for line in lines if line is not None)
