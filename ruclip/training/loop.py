"""finetune(): one fine-tuning run, on one process or under torchrun, resumable exactly.

The run is a pure function of its options and data: the order of the rows in epoch e comes from
a generator seeded with (seed, e), so the position in the data is just the optimizer step, and a
run resumed from a checkpoint (trained weights, optimizer, schedule, RNG state, step) continues
with the same batches, on any number of processes: the global batch is cut into equal slices,
one per process, and the loss sees the whole global batch (latents gathered with gradients).
"""
import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from .._device import cpu_computes, resolve_dtype
from ..identity import model_identity
from ..predictor import DEFAULT_TEMPLATES, Predictor
from ..pretrained import checkpoint_folder, load
from .data import Pairs, embed_distinct, read_pairs
from .loss import MAX_LOGIT_SCALE, clip_loss
from .options import TrainingOptions
from .processes import Processes, start_processes
from .run_folder import ARGS, CARD, METRICS, REPORT, TENSORBOARD, RunFolder, model_card
from .schedule import epoch_order, load_trained, make_optimizer, restore, trained_state, warmup_cosine
from .towers import Trainee, capture_features, merge_lora, set_trainable, use_gradient_checkpointing
from .validation import best_metric, validate

logger = logging.getLogger('ruclip')
FORMAT = 1  # of training_args.json
TEXT_FEATURE_BATCH = 256


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run stops before the step would spoil the weights."""


@dataclass
class FinetuneReport:
    """What a run did. losses: the global batch's loss at each optimizer step (all of them, a
    resumed run's included); validations: the metrics before training (epoch 0) and after each
    epoch; model: the fine-tuned ruclip.CLIP in memory, as written to out."""
    out: str
    steps: int
    train_pairs: int
    skipped: List[tuple]
    losses: List[float]
    validations: List[dict]
    best: Optional[dict]
    seconds: float
    pairs_per_second: float
    identity: dict
    model: object = field(repr=False, default=None)

    @property
    def final_loss(self) -> Optional[float]:
        return self.losses[-1] if self.losses else None

    @property
    def validation_before(self) -> Optional[dict]:
        return self.validations[0]['metrics'] if self.validations else None

    @property
    def validation_after(self) -> Optional[dict]:
        return self.validations[-1]['metrics'] if len(self.validations) > 1 else None

    def to_dict(self) -> dict:
        return dict(out=self.out, steps=self.steps, train_pairs=self.train_pairs,
                    skipped=[dict(image=str(what), reason=reason) for what, reason in self.skipped],
                    final_loss=self.final_loss, losses=self.losses, validation_before=self.validation_before,
                    validation_after=self.validation_after, validations=self.validations, best=self.best,
                    seconds=self.seconds, pairs_per_second=self.pairs_per_second, identity=self.identity)


def finetune(model: str, train, out: str, **options) -> FinetuneReport:
    """Fine-tune a model on image-caption pairs (or classes) and write the result as a checkpoint folder.

    Under torchrun each process calls it with the same arguments; only the first one writes.

    Args:
        model (str | os.PathLike): a name of ruclip.MODELS or a checkpoint folder, the starting weights.
        train (str | os.PathLike | Sequence): CSV / JSONL / parquet tables, webdataset .tar shards, or
            one folder of classes (docs/training.md, "Data").
        out (str | os.PathLike): the run folder: the fine-tuned checkpoint (what ruclip.load takes),
            its record and the checkpoints --resume continues from.
        **options: the other fields of ruclip.training.TrainingOptions (val, lock_image, lock_text,
            unlocked_blocks, lora, epochs, batch_size, lr, seed, save_every, keep_best, wise_ft,
            resume, overwrite, ...).

    Returns:
        FinetuneReport: the losses, the validations before and after, the output model's identity,
        and the fine-tuned model itself (`model`).

    Raises:
        ValueError: bad options, data or out, before any training.
        FileNotFoundError: a missing model, table or folder.
        TrainingDiverged: the loss became NaN or infinite, or the zero-shot check set's accuracy collapsed.
    """
    run = _Run(TrainingOptions(model=model, train=train, out=out, **options))
    try:
        return run.run()
    finally:
        if run._tensorboard is not None:
            run._tensorboard.close()
        run.processes.close()


class _Run:
    def __init__(self, options: TrainingOptions):
        self.options = options
        self.processes: Processes = start_processes(options.device)
        self.show = self.processes.is_main and not options.quiet
        self._tensorboard = None  # a SummaryWriter, when tensorboard is installed

    def run(self) -> FinetuneReport:
        options, processes = self.options, self.processes
        started = time.perf_counter()
        base_folder = checkpoint_folder(options.model, cache_dir=options.cache_dir)
        clip, processor = load(options.model, device=processes.device, cache_dir=options.cache_dir)
        self.clip, self.processor = clip, processor
        self.base_identity = model_identity(clip, processor)
        train = read_pairs(options.train, templates=options.templates, image_column=options.image_column,
                           caption_column=options.caption_column, what='--train')
        val = None if options.val is None else read_pairs(
            options.val, templates=options.templates, image_column=options.image_column,
            caption_column=options.caption_column, what='--val')
        check = None if options.zero_shot_check is None else read_pairs(
            [options.zero_shot_check], templates=options.templates or DEFAULT_TEMPLATES, what='--zero-shot-check')
        manifest = self._manifest(train, val, check)
        self.folder = RunFolder(options.out)
        inputs = [*options.train, *(options.val or ()), *filter(None, [options.zero_shot_check])]
        recorded = self.folder.check(options.model, base_folder, inputs, manifest, options.resume, options.overwrite,
                                     lambda recorded: self._differences(recorded, manifest))
        batch, steps_per_epoch = self._batch_size(len(train))  # checks before the image pass, not after
        processes.barrier()  # every process has looked at --out before the first one writes there

        predictor = Predictor(clip, processor, processes.device, quiet=not self.show,
                              num_workers=options.num_workers)
        projections_only = options.unlocked_blocks == 0
        train, train_images, skipped = self._embed(predictor, train, '--train',
                                                   features=projections_only and not options.lock_image)
        batch, steps_per_epoch = self._batch_size(len(train))
        self.checked = {}  # name: (pairs, image latents): the validation data and the zero-shot check set
        for name, what, pairs in (('val', '--val', val), ('check', '--zero-shot-check', check)):
            if pairs is not None:
                pairs, latents, also_skipped = self._embed(predictor, pairs, what, features=False)
                self.checked[name] = (pairs, latents)
                skipped += also_skipped
        image_input = 'latents' if options.lock_image else 'features' if projections_only else 'pixels'
        text_input = 'latents' if options.lock_text else 'features' if projections_only else 'tokens'
        captions = self._captions(train)
        caption_row = {caption: row for row, caption in enumerate(captions)}
        text_cache = None
        if text_input == 'latents':
            text_cache = predictor.get_caption_latents(captions)
        elif text_input == 'features':
            text_cache = self._text_features(captions)

        if processes.is_main:
            if recorded is None:
                self.folder.clear()
                self.folder.write_json(ARGS, manifest)
        processes.barrier()

        wise_base = ({name: tensor.detach().clone() for name, tensor in clip.state_dict().items()}
                     if options.wise_ft is not None else None)
        torch.manual_seed(options.seed)  # LoRA's initial A
        set_trainable(clip, train_image=not options.lock_image, train_text=not options.lock_text,
                      unlocked_blocks=options.unlocked_blocks, lora=options.lora, lora_alpha=options.lora_alpha)
        if options.grad_checkpointing:
            use_gradient_checkpointing(clip)
        clip.train()
        trainee = Trainee(clip, image_input, text_input)
        trained = [(name, p) for name, p in clip.named_parameters() if p.requires_grad]
        if processes.distributed:
            from torch.nn.parallel import DistributedDataParallel
            network = DistributedDataParallel(trainee, device_ids=[processes.device.index]
                                              if processes.device.type == 'cuda' else None)
        else:
            network = trainee
        groups_per_epoch = -(-steps_per_epoch // options.grad_accum)
        total_steps = options.epochs * groups_per_epoch
        optimizer = make_optimizer(trained, options)
        scheduler = warmup_cosine(optimizer, total_steps, options.warmup)

        state = self.folder.load_state(self.folder.last) if recorded is not None else None
        if processes.is_main:  # a resumed run drops the events a killed one logged past its checkpoint
            self._tensorboard = tensorboard_writer(self.folder.path(TENSORBOARD), state['step'] if state else None)
        if state is not None:
            restore(state, trained, optimizer, scheduler)
            step, losses, validations, best = state['step'], state['losses'], state['validations'], state['best']
            if processes.is_main:
                self._rewrite_metrics(step)
        else:
            step, losses, validations, best = 0, [], [], None
            if self.checked:
                validations.append(dict(epoch=0, step=0, metrics=self._validate(predictor)))
                self._log(dict(validations[-1], event='validation'))

        inputs = dict(images=(image_input, train_images), texts=(text_input, text_cache, caption_row))
        pairs_seen, train_seconds = 0, 0.0
        from tqdm.auto import tqdm
        with tqdm(total=total_steps, initial=step, unit='step', disable=not self.show, desc='fine-tuning') as bar:
            for epoch in range(step // groups_per_epoch, options.epochs):
                order, template_of = epoch_order(len(train), options.seed, epoch, train.templates)
                for group in range(step % groups_per_epoch if epoch == step // groups_per_epoch else 0,
                                   groups_per_epoch):
                    tick = time.perf_counter()
                    micro = range(group * options.grad_accum, min((group + 1) * options.grad_accum, steps_per_epoch))
                    batches = [order[index * batch:(index + 1) * batch] for index in micro]
                    loss_value = self._accumulate(network, batches, train, template_of, inputs)
                    if not math.isfinite(loss_value):
                        raise TrainingDiverged(
                            f'the training loss became {loss_value} at step {step + 1} (epoch {epoch + 1}); the '
                            f'weights were not changed by it. Lower --lr (now {options.lr}), keep --grad-clip, or '
                            f'train with --precision fp32; the last checkpoint is in {self.folder.last}')
                    if options.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_([p for _, p in trained], options.grad_clip)
                    lr = optimizer.param_groups[0]['lr']  # this step's
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():
                        clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
                    step += 1
                    losses.append(loss_value)
                    seconds = time.perf_counter() - tick
                    pairs_seen += len(micro) * batch
                    train_seconds += seconds
                    self._log(dict(event='step', step=step, epoch=epoch + (group + 1) / groups_per_epoch,
                                   loss=loss_value, lr=lr, logit_scale=float(clip.logit_scale.detach()),
                                   pairs_per_second=len(micro) * batch / seconds))
                    bar.update(1)
                    bar.set_postfix(loss=f'{loss_value:.4f}', lr=f'{lr:.2e}',
                                    pairs_s=f'{pairs_seen / train_seconds:.1f}')
                    end_of_epoch = group == groups_per_epoch - 1
                    if options.save_every and step % options.save_every == 0 and not end_of_epoch:
                        self._save(step, trained, optimizer, scheduler, losses, validations, best)
                if self.checked:
                    metrics = self._validate(predictor)
                    validations.append(dict(epoch=epoch + 1, step=step, metrics=metrics))
                    self._log(dict(validations[-1], event='validation'))
                    self._check_forgetting(validations, step)
                    name = best_metric(metrics)
                    if options.keep_best and (best is None or metrics[name] > best['value']):
                        best = dict(epoch=epoch + 1, step=step, metric=name, value=metrics[name])
                        if processes.is_main:
                            self.folder.save_state(self.folder.best, dict(trained=trained_state(trained)))
                self._save(step, trained, optimizer, scheduler, losses, validations, best)

        if options.keep_best and best is not None:
            kept = self.folder.load_state(self.folder.best)
            load_trained(trained, kept['trained'])
        clip.requires_grad_(False)
        merge_lora(clip)
        for module in clip.modules():
            module.__dict__.pop('forward', None)  # gradient checkpointing's wrapper
        if wise_base is not None:
            alpha = options.wise_ft
            mixed = {name: (1 - alpha) * wise_base[name] + alpha * tensor
                     for name, tensor in clip.state_dict().items()}
            clip.load_state_dict(mixed)
        clip.eval()
        if self.checked and (wise_base is not None or best is not None):
            validations.append(dict(epoch=options.epochs, step=step, output=True, metrics=self._validate(predictor)))
        identity = model_identity(clip, processor, name=os.path.abspath(options.out))
        report = FinetuneReport(
            out=os.path.abspath(options.out), steps=step, train_pairs=len(train), skipped=skipped, losses=losses,
            validations=validations, best=best, seconds=time.perf_counter() - started,
            pairs_per_second=pairs_seen / train_seconds if train_seconds else 0.0, identity=identity.to_dict(),
            model=clip)
        if processes.is_main:
            self.folder.write_model(clip, base_folder)
            self.folder.write_json(REPORT, report.to_dict())
            self.folder.write_text(CARD, model_card(manifest, report.to_dict()))
        processes.barrier()
        return report

    # ---- setup ------------------------------------------------------------------------------

    def _manifest(self, train: Pairs, val: Optional[Pairs], check: Optional[Pairs]) -> dict:
        def data(pairs):
            return None if pairs is None else dict(source=pairs.source, fingerprint=pairs.fingerprint, rows=len(pairs))
        return dict(format=FORMAT, out=os.path.abspath(self.options.out), options=self.options.to_dict(),
                    base_model=self.base_identity.to_dict(), train=data(train), val=data(val),
                    zero_shot_check=data(check))

    def _differences(self, recorded: dict, manifest: dict) -> List[str]:
        differing = self.options.differences(recorded.get('options', {}))
        if recorded.get('base_model', {}).get('fingerprint') != manifest['base_model']['fingerprint']:
            differing.append(f'base model: {recorded.get("base_model", {}).get("name")} (fingerprint '
                             f'{str(recorded.get("base_model", {}).get("fingerprint"))[:12]}) -> '
                             f'{self.base_identity.describe()}')
        for name in ('train', 'val', 'zero_shot_check'):
            before, now = recorded.get(name) or {}, manifest[name] or {}
            if before.get('fingerprint') != now.get('fingerprint'):
                differing.append(f'{name} data: {before.get("source")} changed (its files, sizes or dates differ)')
        return differing

    def _batch_size(self, rows: int):
        """(global batch, batches per epoch): the batch is cut to the rows there are, and must split
        evenly over the processes."""
        world = self.processes.world_size
        if self.options.batch_size % world:
            raise ValueError(f'--batch-size {self.options.batch_size} is the global batch; it must split evenly '
                             f'over the {world} processes')
        batch = min(self.options.batch_size, rows // world * world)
        if batch < 2:
            raise ValueError(f'--train has {rows} usable pairs: a contrastive batch needs at least 2 '
                             f'(and one per process)')
        return batch, rows // batch

    def _embed(self, predictor: Predictor, pairs: Pairs, what: str, features: bool):
        """The readable rows of pairs, their image latents (or, features=True, the image tower's
        output before its projection), and what was skipped; no readable row is a ValueError.
        Each distinct picture goes through the tower once, however many rows (captions) name it."""
        captured = []
        hook = capture_features(self.clip.visual.ln_post, captured) if features else None
        try:
            pictures = embed_distinct(predictor, pairs.images, progress=self.show)
        finally:
            if hook is not None:
                hook.remove()
        for image, reason in pictures.reasons.items():
            logger.warning('%s: skipped an image that cannot be read: %s', what, reason)
        skipped = list(pairs.skipped) + [(image if isinstance(image, str) else f'<{len(image)} bytes>',
                                          pictures.reasons[image]) for image in pairs.images if image in pictures.reasons]
        if not pictures.rows:
            raise ValueError(f'{what}: none of the {len(pictures.reasons)} images could be read (the first: '
                             f'{next(iter(pictures.reasons.values()))})')
        kept = pairs.keep(pictures.rows)
        kept.skipped = skipped
        latents = (torch.cat(captured) if features else pictures.embedded.latents)[torch.tensor(pictures.picks)]
        return kept, latents.to(self.processes.device), skipped

    def _captions(self, pairs: Pairs) -> List[str]:
        """Every caption a row can have: a table's captions, or each class in each template."""
        if pairs.classes is None:
            return list(dict.fromkeys(pairs.captions))
        return [template.format(name.lower()) for name in pairs.classes for template in pairs.templates]

    def _text_features(self, captions: List[str]) -> torch.Tensor:
        """The text tower's output before its projection, for each caption (in inference mode, once)."""
        captured = []
        hook = capture_features(self.clip.ln_final, captured)
        try:
            with torch.inference_mode():
                for start in range(0, len(captions), TEXT_FEATURE_BATCH):
                    self.clip.encode_text(self._tokens(captions[start:start + TEXT_FEATURE_BATCH]))
        finally:
            hook.remove()
        return torch.cat(captured).to(self.processes.device)

    def _tokens(self, captions: List[str]) -> torch.Tensor:
        rows = [self.processor.tokenize(caption) for caption in captions]
        return self.processor.pad(rows, length=max(map(len, rows))).to(self.processes.device)

    def _autocast(self):
        device, precision = self.processes.device, self.options.precision
        if precision == 'auto':
            native = (device.type == 'cuda' and torch.cuda.is_bf16_supported()) or (
                device.type == 'cpu' and cpu_computes(torch.bfloat16))
            enabled = native
        else:
            enabled = precision == 'bf16'
            if enabled:
                resolve_dtype('bf16', device)  # warns once where bf16 is emulated
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)

    # ---- batches ----------------------------------------------------------------------------

    def _accumulate(self, network, batches: List[List[int]], pairs: Pairs, template_of, inputs: dict) -> float:
        """Forward and backward of each global batch (rows of `pairs`) of one optimizer step, this
        process's slice of each, the gradients accumulated (and synchronised after the last);
        returns the mean loss of the global batches."""
        processes = self.processes
        rank, world = processes.rank, processes.world_size
        autocast = self._autocast()
        loss_value = 0.0
        for position, rows in enumerate(batches):
            local = len(rows) // world
            mine = rows[rank * local:(rank + 1) * local]
            images = self._images(pairs, mine, *inputs['images'])
            texts = self._texts(pairs, mine, template_of, *inputs['texts'])
            groups = torch.tensor([pairs.groups[row] for row in rows], device=processes.device)  # [global batch]
            last = position == len(batches) - 1
            with network.no_sync() if processes.distributed and not last else contextlib.nullcontext():
                with autocast:
                    image_latents, text_latents, logit_scale = network(images, texts)
                if processes.distributed:
                    loss = clip_loss(image_latents, text_latents, logit_scale, groups[rank * local:(rank + 1) * local],
                                     processes.gather(image_latents), processes.gather(text_latents), groups)
                else:
                    loss = clip_loss(image_latents, text_latents, logit_scale, groups)
                (loss / len(batches)).backward()
            loss_value += float(loss.detach()) / len(batches)
        return processes.mean(loss_value)

    def _images(self, pairs: Pairs, rows: List[int], kind: str, cache: Optional[torch.Tensor]) -> torch.Tensor:
        if kind != 'pixels':
            return cache[rows]
        from .._batches import image_batches
        sources = [pairs.images[row] for row in rows]
        pixels = next(image_batches(sources, self.processor.image_transform, len(sources),
                                    num_workers=min(len(sources), self.options.num_workers or 2)))
        return pixels.to(self.processes.device)

    def _texts(self, pairs: Pairs, rows: List[int], template_of, kind, cache, caption_row) -> torch.Tensor:
        captions = [pairs.caption_of(row, template_of[row]) for row in rows]
        if kind == 'tokens':
            return self._tokens(captions)
        return cache[[caption_row[caption] for caption in captions]]

    # ---- records ----------------------------------------------------------------------------

    def _validate(self, predictor: Predictor) -> Dict[str, float]:
        """The validation metrics, and the zero-shot check set's as check_zero_shot_acc1 and check_chance."""
        was_training = self.clip.training
        metrics = {}
        for name, (pairs, latents) in self.checked.items():
            measured = validate(predictor, pairs, latents if self.options.lock_image else None)
            if name == 'check':
                measured = {f'check_{key}': measured[key] for key in ('zero_shot_acc1', 'chance')}
            metrics.update(measured)
        self.clip.train(was_training)
        return metrics

    def _check_forgetting(self, validations: List[dict], step: int) -> None:
        """Stop when the zero-shot check set's accuracy, at least twice chance before training, has
        fallen to half of that or less: the model is forgetting what it knew."""
        before, now = validations[0]['metrics'], validations[-1]['metrics']
        if 'check_zero_shot_acc1' not in before or validations[0]['epoch'] != 0:
            return
        start, chance, current = before['check_zero_shot_acc1'], before['check_chance'], now['check_zero_shot_acc1']
        if start >= 2 * chance and current <= start / 2:
            raise TrainingDiverged(
                f'zero-shot accuracy on the check set collapsed from {start:.3f} before training to {current:.3f} '
                f'at step {step} (chance {chance:.3f}): the model is forgetting what it knew. Lower --lr (now '
                f'{self.options.lr}), lock a tower (--lock-image), train fewer blocks (--unlocked-blocks) or use '
                f'--wise-ft; the last checkpoint is in {self.folder.last}')

    def _log(self, record: dict) -> None:
        if not self.processes.is_main:
            return
        import json
        with open(self.folder.path(METRICS), 'a', encoding='utf-8') as file:
            file.write(json.dumps(record) + '\n')
        if self._tensorboard is not None:
            if record['event'] == 'step':
                for name in ('loss', 'lr', 'logit_scale', 'pairs_per_second'):
                    self._tensorboard.add_scalar(f'train/{name}', record[name], record['step'])
            elif record['event'] == 'validation':
                for name, value in record['metrics'].items():
                    if isinstance(value, (int, float)):
                        self._tensorboard.add_scalar(f'validation/{name}', value, record['step'])

    def _rewrite_metrics(self, step: int) -> None:
        from .._outputs import atomic_open
        lines = self.folder.metrics_lines(step)
        with atomic_open(self.folder.path(METRICS), 'w', encoding='utf-8') as file:
            file.writelines(lines)

    def _save(self, step, trained, optimizer, scheduler, losses, validations, best) -> None:
        if self.processes.is_main:
            self.folder.save_state(self.folder.last, dict(
                step=step, trained=trained_state(trained), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), rng=torch.get_rng_state(), losses=list(losses),
                validations=validations, best=best))
        self.processes.barrier()


def tensorboard_writer(folder: str, purge_step: Optional[int]):
    """A torch SummaryWriter logging into `folder` when the tensorboard package is installed, else None
    (metrics.jsonl holds the same figures either way)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(folder, purge_step=purge_step)
