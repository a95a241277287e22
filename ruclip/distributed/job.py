"""What both engines do around the partitions: the manifest, which partitions are left, the report."""
import os
import time
from dataclasses import dataclass, replace
from typing import List, Optional

from .inputs import Inputs
from .manifest import build_manifest, prepare_output, write_success
from .partition import Settings, predictor_for
from .shards import partition_done, read_marker


@dataclass
class Report:
    """What a run did.

    Attributes:
        partitions_written: the partitions this run wrote.
        partitions_skipped: the partitions found done under the same manifest.
        rows: rows embedded in the partitions this run wrote.
        failed: rows that failed there.
        seconds: the run's time.
        complete: _SUCCESS was written (every partition is done).
    """
    partitions_written: List[int]
    partitions_skipped: List[int]
    rows: int
    failed: int
    seconds: float
    complete: bool

    @property
    def rows_per_second(self) -> float:
        return (self.rows + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def summary(self, out: str) -> str:
        text = (f'wrote {len(self.partitions_written)} partitions ({self.rows} rows embedded, {self.failed} failed) '
                f'to {out} in {self.seconds:.1f} s, {self.rows_per_second:.1f} rows/s')
        if self.partitions_skipped:
            text += f'; {len(self.partitions_skipped)} partitions were already done'
        return text + ('; all partitions done (_SUCCESS)' if self.complete else '')


def start(inputs: Inputs, settings: Settings, overwrite: bool = False, predictor=None) -> Settings:
    """Check the output folder against this run's manifest, writing the manifest if the folder is new.

    Loads the model here (unless `predictor` is given), once, on the machine that starts the run.

    Args:
        inputs: the input, from list_inputs.
        settings: the model, output folder and partition count.
        overwrite: clear a folder of another run's shards (only the files a run writes) first.
        predictor (Predictor | None): a Predictor of settings.model to use instead of loading it.

    Returns:
        Settings: these settings with the manifest's digest and the model's fingerprint, which every
        worker's model must have: pass them to embed_partition.

    Raises:
        ValueError: a partition count below 1, an empty input, more partitions than input units,
            texts asked for without captions, or a folder of another run without overwrite.
    """
    if settings.partition_count < 1:
        raise ValueError(f'the partition count must be at least 1, got {settings.partition_count}')
    if not inputs.units:
        raise ValueError('the input is empty: nothing to embed')
    if settings.partition_count > len(inputs.units):
        raise ValueError(f'{settings.partition_count} partitions for {len(inputs.units)} {inputs.kind} '
                         f'(the unit partitioned): some would be empty; use at most {len(inputs.units)}')
    if settings.texts and not inputs.has_captions:
        raise ValueError(f'texts asked for, but the {inputs.kind} input has no caption column')
    identity = (predictor or predictor_for(settings)).identity
    manifest = build_manifest(settings.model, identity, inputs, settings.partition_count, settings.texts)
    digest = prepare_output(os.fspath(settings.out), manifest, overwrite)
    return replace(settings, manifest_digest=digest, model_fingerprint=identity.fingerprint)


def pending(settings: Settings, only: Optional[List[int]] = None) -> (List[int], List[int]):
    """The partitions still to do and those already done under this manifest.

    Args:
        settings: as returned by `prepare`.
        only: the partitions to consider; default all.

    Returns:
        tuple[list[int], list[int]]: (to do, done).
    """
    ids = range(settings.partition_count) if only is None else only
    done = [i for i in ids if partition_done(settings.out, i, settings.partition_count, settings.manifest_digest)]
    return [i for i in ids if i not in set(done)], done


def complete(settings: Settings) -> Optional[dict]:
    """Write _SUCCESS if every partition is done (a Spark or SLURM driver calls this at the end).

    Args:
        settings: as returned by `prepare`.

    Returns:
        The totals written into _SUCCESS, or None while some partition is not done.
    """
    return write_success(settings.out, settings.partition_count, settings.manifest_digest)


def finish(settings: Settings, written: List[int], skipped: List[int], started: float) -> Report:
    """An engine's last step: write _SUCCESS if every partition is done, and report the run.

    Args:
        settings: as returned by `prepare`.
        written: the partitions this run wrote.
        skipped: the partitions found done and skipped.
        started: `time.perf_counter()` when the run started.

    Returns:
        Report: the partitions written and skipped, their rows and failures, the time taken, and
        whether _SUCCESS was written.
    """
    markers = [read_marker(settings.out, i, settings.partition_count) for i in written]
    complete = write_success(settings.out, settings.partition_count, settings.manifest_digest) is not None
    return Report(partitions_written=written, partitions_skipped=skipped, rows=sum(m['rows'] for m in markers),
                  failed=sum(m['failed'] for m in markers), seconds=time.perf_counter() - started, complete=complete)
