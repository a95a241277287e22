"""The local engine: this process embeds the partitions one after another with one Predictor."""
import logging
import time
from typing import List, Optional

from .inputs import Inputs
from .job import Report, finish, pending, start
from .partition import Settings, embed_partition, predictor_for

logger = logging.getLogger('ruclip')


def run_local(inputs: Inputs, settings: Settings, only: Optional[List[int]] = None, overwrite: bool = False,
              predictor=None) -> Report:
    """Embed the partitions not done yet into settings.out, in this process.

    `only=[i]` is `--partition i/N`: one SLURM array task or shell-loop step. A partition already
    done under the same manifest is skipped, so rerunning after a crash redoes only the rest.

    Args:
        inputs: the input, from list_inputs.
        settings: the model, output folder and partition count.
        only: the partitions to embed; default all.
        overwrite: clear a folder of another run's shards (only the files a run writes) first.
        predictor (Predictor | None): a Predictor to use instead of loading settings.model (it must
            be that model).

    Returns:
        Report: rows and failures written, partitions written and skipped, whether _SUCCESS was
        written.

    Raises:
        ValueError: a folder of another run (what differs named) without overwrite, a folder of
            files without a manifest, an empty input, or more partitions than input units.
    """
    started = time.perf_counter()
    settings = start(inputs, settings, overwrite, predictor)
    todo, skipped = pending(settings, only)
    if skipped:
        logger.info('%d partitions already done, skipped: %s', len(skipped), skipped)
    if todo:
        predictor = predictor or predictor_for(settings)
    for partition_id in todo:
        marker = embed_partition(partition_id, inputs, settings, predictor)
        logger.info('partition %d/%d: %d rows, %d failed', partition_id, settings.partition_count,
                    marker['rows'], marker['failed'])
    return finish(settings, todo, skipped, started)
