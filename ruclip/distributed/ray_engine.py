"""The Ray engine: Ray Data streams each partition's samples into model actors; the driver writes shards.

    partition ids -> flat_map (CPU tasks: list the partition's samples, fetch URLs, read tar shards)
                  -> map_batches(Embedder actors: Predictor.get_image_latents / get_caption_latents)
                  -> driver: gathers each partition's pieces by position, writes them (shards.py)

Each actor loads the model once (partition.predictor_for) on its device: num_gpus=1 per actor
where the cluster has GPUs (a fraction shares a GPU between actors), CPU actors otherwise; the
Predictor's threads decode and transform the images inside the actor. Ray restarts a killed actor
and retries its batches (Ray Data's defaults, max_restarts=-1, max_task_retries=-1); nothing of a
partition is written before all its rows are back, so a retry can never duplicate a row. The
driver needs the output folder (a local or shared file system).

Connects to RAY_ADDRESS / address when given, else to the Ray already initialised in this
process, else starts a local one.
"""
import logging
import os
import pickle
import time
from collections import defaultdict
from dataclasses import replace
from typing import List, Optional

from .._optional import require
from .inputs import Inputs, fetched
from .job import Report, finish, pending, start
from .partition import Embedded, Settings, embed_samples, predictor_for, write_embedded

logger = logging.getLogger('ruclip')
ROWS_PER_CALL = 64  # samples handed to an actor per call; its Predictor batches them for the device
READER_CPUS = 0.25  # a read task mostly waits (files, URLs): it must not hold a CPU the actors need


def _ray():
    return require('ray', 'ray', 'the Ray engine (--engine ray)')


def init_ray(address: Optional[str] = None, **options):
    """Connect to the cluster at `address` (or RAY_ADDRESS), or start a local one with `options`
    (ray.init's: num_cpus, object_store_memory, ...). A local cluster's workers import this very
    ruclip (its folder goes first on their PYTHONPATH)."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get('RAY_ADDRESS')
    if address:
        ray.init(address=address, **options)
    else:
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(p for p in (here, os.environ.get('PYTHONPATH')) if p)
        options.setdefault('include_dashboard', False)
        ray.init(runtime_env={'env_vars': {'PYTHONPATH': path}}, **options)
    return ray


class PartitionReader:
    """A partition id -> its samples as rows (partition, position, sample), then one end row with the count."""

    def __init__(self, inputs: Inputs, settings: Settings):
        self.inputs, self.settings = inputs, settings

    def __call__(self, row: dict) -> List[dict]:
        partition = int(row['partition'])
        samples = self.inputs.partition_samples(partition, self.settings.partition_count)
        rows = [dict(partition=partition, position=position, sample=pickle.dumps(sample))
                for position, sample in enumerate(fetched(samples, self.settings.url_timeout))]
        return rows + [dict(partition=partition, position=len(rows), sample=b'')]  # pickled: Arrow takes bytes


class Embedder:
    """The model actor: a batch of rows -> one row per run of rows of the same partition, holding
    (partition, first position, count, Embedded), or the end row passed through (count -1)."""

    def __init__(self, settings: Settings, with_captions: bool):
        self.settings, self.with_captions = settings, with_captions
        self.predictor = predictor_for(replace(settings, quiet=True))  # Ray Data shows the progress

    def __call__(self, batch: dict) -> dict:
        out = dict(partition=[], position=[], count=[], embedded=[])
        runs = []
        for partition, position, sample in zip(batch['partition'], batch['position'], batch['sample']):
            sample = pickle.loads(sample) if len(sample) else None
            if sample is None:
                runs.append([int(partition), int(position), None])
            elif runs and runs[-1][2] is not None and runs[-1][0] == partition:
                runs[-1][2].append(sample)
            else:
                runs.append([int(partition), int(position), [sample]])
        for partition, position, samples in runs:
            out['partition'].append(partition)
            out['position'].append(position)
            out['count'].append(-1 if samples is None else len(samples))
            out['embedded'].append(b'' if samples is None else pickle.dumps(
                embed_samples(self.predictor, samples, self.settings.texts, self.with_captions)))
        return out


def run_ray(inputs: Inputs, settings: Settings, only: Optional[List[int]] = None, overwrite: bool = False,
            address: Optional[str] = None, actors: Optional[int] = None, gpus_per_actor: float = 1.0,
            cpus_per_actor: float = 1.0, embedder=Embedder) -> Report:
    """Embed the partitions not done yet on a Ray cluster, as run_local does.

    CPU tasks list each partition, fetch URLs and read tar shards; model actors embed; the driver
    writes each partition once all its rows are back.

    Args:
        inputs: the input, from list_inputs.
        settings: the model, output folder and partition count.
        only: the partitions to embed; default all.
        overwrite: as for run_local.
        address: the Ray cluster to join (or RAY_ADDRESS); None starts a local one.
        actors: model actors; default one per GPU of the cluster, else 1.
        gpus_per_actor: GPUs each actor takes on a cluster with GPUs (0.5: two share a GPU).
        cpus_per_actor: CPUs each actor takes on a cluster without GPUs.
        embedder (type): the actor class (a subclass can wrap __call__).

    Returns:
        Report, as run_local's.

    Raises:
        ValueError: as run_local.
        ImportError: Ray is not installed (the `ray` extra).
    """
    started = time.perf_counter()
    ray = _ray()
    settings = start(inputs, settings, overwrite)
    todo, skipped = pending(settings, only)
    if todo:
        init_ray(address)
        data = require('ray.data', 'ray', 'the Ray engine (--engine ray)')
        context = data.DataContext.get_current()
        context.enable_progress_bars = not settings.quiet
        resources = ray.cluster_resources()
        gpus, cpus = resources.get('GPU', 0), resources.get('CPU', 0)
        actors = actors or max(1, int(gpus // gpus_per_actor) if gpus else 1)
        if actors * cpus_per_actor + READER_CPUS > cpus:
            raise ValueError(f'{actors} actors of {cpus_per_actor} CPUs each and the read tasks ({READER_CPUS} CPU) '
                             f'need more than the {cpus:g} CPUs of the Ray cluster: use fewer actors or a smaller '
                             f'cpus_per_actor')
        dataset = (data.from_items([dict(partition=p) for p in todo], override_num_blocks=len(todo))
                   .flat_map(PartitionReader(inputs, settings), num_cpus=READER_CPUS)
                   .map_batches(embedder, fn_constructor_args=(settings, inputs.has_captions),
                                compute=data.ActorPoolStrategy(size=actors), batch_size=ROWS_PER_CALL,
                                batch_format='numpy', num_cpus=cpus_per_actor, num_gpus=gpus_per_actor if gpus else 0))
        _gather_and_write(dataset, settings)
    return finish(settings, todo, skipped, started)


def _gather_and_write(dataset, settings: Settings) -> None:
    """Collect the actors' pieces per partition; write a partition once its end row and all its rows are in."""
    pieces, totals, received = defaultdict(list), {}, defaultdict(int)
    embed_dim = None
    for batch in dataset.iter_batches(batch_size=None, batch_format='numpy'):
        for partition, position, count, embedded in zip(batch['partition'], batch['position'], batch['count'],
                                                        batch['embedded']):
            partition = int(partition)
            if count < 0:
                totals[partition] = int(position)
            else:
                embedded = pickle.loads(embedded)
                pieces[partition].append((int(position), embedded))
                received[partition] += int(count)
                embed_dim = embed_dim or next((a.shape[1] for a in embedded.image_latents), None)
            if partition in totals and received[partition] == totals[partition]:
                merged = Embedded()
                for _, piece in sorted(pieces.pop(partition), key=lambda item: item[0]):
                    merged.extend(piece)
                write_embedded(partition, merged, settings, embed_dim or 0)
                del totals[partition], received[partition]
    if totals or pieces:
        raise RuntimeError(f'the Ray run ended with partitions incomplete: {sorted(set(totals) | set(pieces))}')
