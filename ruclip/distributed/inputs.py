"""What a job embeds: a deterministic list of inputs, cut into partitions, read as samples.

Three kinds of input, each listed once and in a fixed order, so that every process that lists the
same input (the driver, a SLURM array task, a Spark executor) finds the same partitions:
- files: image files and folders, in ruclip.find_images order (each folder's files sorted);
  the unit of partitioning is the file;
- tables: .parquet, .csv or .jsonl files with one row per image, in the order given and row order
  within each; a column holds a path (relative paths are taken from the table's folder) or an
  http(s) URL, another an optional caption; the unit is the row, and every other column is carried
  into the metadata;
- tars: webdataset .tar shards, sorted by name; the unit is the shard, whose samples (members that
  share a key, the name up to the first dot) are read in archive order.
Unit u goes to partition u % N, as clip-retrieval's Sampler does. URLs are fetched when a sample is
loaded, with a timeout; every failure becomes a Sample with an `error`, never an exception.
"""
import hashlib
import json
import os
from typing import Iterator, List, Optional, Sequence

from .._optional import require
from .sample import Sample, fetch, fetched  # noqa: F401 - re-exported: the input side in one place
from .tars import read_tar

TABLE_SUFFIXES = ('.parquet', '.csv', '.jsonl')
IMAGE_COLUMNS = ('image_path', 'url', 'path', 'image', 'filepath')  # tried in order when none is named
CAPTION_COLUMNS = ('caption', 'text')


class Inputs:
    """The base: `units` (a list of str, the things partitioned), `fingerprint()`, and
    `samples(unit_indices)`, which reads the units' samples in order."""
    kind = ''
    has_captions = False

    def __init__(self, units: List[str]):
        self.units = units

    def partition(self, partition_id: int, partition_count: int) -> List[int]:
        """Indices of the units of partition `partition_id` of `partition_count`: i % N == id."""
        if not 0 <= partition_id < partition_count:
            raise ValueError(f'partition {partition_id} does not exist: there are {partition_count} (0 to '
                             f'{partition_count - 1})')
        return list(range(partition_id, len(self.units), partition_count))

    def partition_samples(self, partition_id: int, partition_count: int) -> Iterator[Sample]:
        return self.samples(self.partition(partition_id, partition_count))

    def samples(self, unit_indices: Sequence[int]) -> Iterator[Sample]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 of the kind, the options and each unit's name, size and modification time."""
        digest = hashlib.sha256(json.dumps([self.kind, self._options()]).encode())
        for unit in self._fingerprinted_files():
            stat = os.stat(unit)
            digest.update(f'{unit}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode('utf-8', 'surrogateescape'))
        return digest.hexdigest()

    def _options(self) -> dict:
        return {}

    def _fingerprinted_files(self) -> List[str]:
        return self.units


class FileInputs(Inputs):
    kind = 'files'

    def samples(self, unit_indices):
        for index in unit_indices:
            path = self.units[index]
            yield Sample(image_path=path, key=f'{index:09d}', image=path)


class TarInputs(Inputs):
    kind = 'tars'
    has_captions = True

    def samples(self, unit_indices):
        for index in unit_indices:
            yield from read_tar(self.units[index])


class TableInputs(Inputs):
    kind = 'tables'

    def __init__(self, tables: List[str], image_column: Optional[str] = None, caption_column: Optional[str] = None):
        self.tables = tables
        self.rows = []  # (table index, row dict)
        self.image_column, self.caption_column = image_column, caption_column
        for number, table in enumerate(tables):
            rows = read_table(table)
            columns = list(rows[0]) if rows else []
            if not rows:
                continue
            self.image_column = self.image_column or next((c for c in IMAGE_COLUMNS if c in columns), None)
            if self.image_column not in columns:
                raise ValueError(f'table {table} has no column {self.image_column or " or ".join(IMAGE_COLUMNS)} '
                                 f'with the image paths or URLs; its columns are {columns} '
                                 f'(name the column with --image-column)')
            if caption_column is None and self.caption_column is None:
                self.caption_column = next((c for c in CAPTION_COLUMNS if c in columns), None)
            if self.caption_column is not None and self.caption_column not in columns:
                raise ValueError(f'table {table} has no caption column {self.caption_column!r}; its columns are '
                                 f'{columns}')
            self.rows.extend((number, row) for row in rows)
        self.has_captions = self.caption_column is not None
        super().__init__([str(i) for i in range(len(self.rows))])

    def _options(self):
        return dict(image_column=self.image_column, caption_column=self.caption_column)

    def _fingerprinted_files(self):
        return self.tables

    def samples(self, unit_indices):
        for index in unit_indices:
            number, row = self.rows[index]
            value = row[self.image_column]
            caption = row.get(self.caption_column) if self.caption_column else None
            extra = {name: value for name, value in row.items()
                     if name not in (self.image_column, self.caption_column, 'image_path', 'caption')}
            key = str(extra.pop('key')) if extra.get('key') is not None else f'{index:09d}'
            sample = Sample(image_path=str(value), key=key, caption=None if caption is None else str(caption),
                            extra=extra)
            if not isinstance(value, str) or not value:
                sample.error = f'no image path or URL in column {self.image_column!r} (got {value!r})'
            elif value.startswith(('http://', 'https://')):
                sample.url = value
            else:
                sample.image = os.path.join(os.path.dirname(self.tables[number]), value)
            yield sample


def list_inputs(paths: Sequence[str], input_format: str = 'auto', image_column: Optional[str] = None,
                caption_column: Optional[str] = None) -> Inputs:
    """The Inputs for command-line paths, partitioned unit i to partition i % N.

    Args:
        paths: image files and folders, tables (.parquet, .csv, .jsonl) or webdataset .tar shards.
        input_format: 'files', 'table', 'tar', or 'auto' (tables if every path ends in
            .parquet/.csv/.jsonl, tars if every one ends in .tar, else files).
        image_column: the tables' column of image paths or URLs; default the first of image_path,
            url, path, image, filepath.
        caption_column: the tables' caption column; default caption or text when present.

    Returns:
        FileInputs, TableInputs or TarInputs.

    Raises:
        ValueError: no paths, an unknown format, or a table without the column asked for.
        FileNotFoundError: a path that does not exist.
    """
    from ..image_files import find_images

    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise ValueError('no input given: name image files, folders, tables or .tar shards')
    if input_format == 'auto':
        input_format = ('table' if all(p.lower().endswith(TABLE_SUFFIXES) for p in paths) else
                        'tar' if all(p.lower().endswith('.tar') for p in paths) else 'files')
    if input_format == 'files':
        return FileInputs(find_images(paths))
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'no such {input_format} file: {path}')
    if input_format == 'tar':
        return TarInputs(sorted(paths))
    if input_format == 'table':
        return TableInputs(paths, image_column, caption_column)
    raise ValueError(f'unknown input format {input_format!r}; choose auto, files, table or tar')


def read_table(path: str) -> List[dict]:
    """A table's rows as dicts (pyarrow reads all three formats, keeping the columns' types)."""
    lower = path.lower()
    if lower.endswith('.parquet'):
        pq = require('pyarrow.parquet', 'distributed', 'reading a parquet table')
        return pq.read_table(path).to_pylist()
    if lower.endswith('.csv'):
        csv = require('pyarrow.csv', 'distributed', 'reading a CSV table')
        return csv.read_csv(path).to_pylist()
    if lower.endswith('.jsonl'):
        with open(path, encoding='utf-8') as file:
            rows = []
            for number, line in enumerate(file, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise ValueError(f'{path}, line {number}: not JSON ({error})') from None
            return rows
    raise ValueError(f'table {path}: expected a .parquet, .csv or .jsonl file')
