"""Embedding collections too large for one process: partitions, sharded resumable output in the
clip-retrieval layout, the local and Ray engines (pip install 'ruclip[distributed]' / 'ruclip[ray]').

The pieces, each usable alone (a Spark or SLURM job calls embed_partition for its ids):
    list_inputs(paths, ...)                  -> Inputs (files, tables or tar shards), partitioned i % N
    Settings(model, out, partition_count)    what every worker needs, picklable
    run_local(inputs, settings, only=None)   the local engine; run_ray(...) the Ray engine
    prepare(inputs, settings)                the manifest check a Spark driver runs before embed_partition;
                                             its settings carry the manifest digest the workers need
    pending(settings)                        (partitions to do, partitions done)
    embed_partition(i, inputs, settings)     the engine-free core: one partition's files
    complete(settings)                       _SUCCESS once every partition is done
    iter_shards(folder)                      (latents, metadata rows) per partition, to build an index
"""
from .inputs import FileInputs, Inputs, Sample, TableInputs, TarInputs, list_inputs
from .job import Report, complete, finish, pending
from .job import start as prepare
from .local import run_local
from .partition import Settings, embed_partition
from .reader import iter_shards, read_shards, verify_shards


def run_ray(*args, **kwargs):
    """ray_engine.run_ray, imported when called (Ray is an optional dependency)."""
    from .ray_engine import run_ray as run
    return run(*args, **kwargs)


__all__ = ['FileInputs', 'Inputs', 'Sample', 'TableInputs', 'TarInputs', 'list_inputs', 'Report', 'complete', 'finish',
           'pending',
           'prepare', 'run_local', 'run_ray', 'Settings', 'embed_partition', 'iter_shards', 'read_shards',
           'verify_shards']
