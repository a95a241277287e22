"""Result records: written as JSON (one per run, CLIP_benchmark's shape), read back, and put side by
side with the figures the RuCLIP README published (published.json, copied from its tables)."""
import json
import math
import os
from typing import Dict, Iterable, List, Optional

from .._outputs import atomic_open, check_writable_file

PUBLISHED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'published.json')
TASK_TITLES = {'zeroshot_classification': 'zero-shot', 'linear_probe': 'linear probe',
               'zeroshot_retrieval': 'retrieval'}
RETRIEVAL_HEADLINE = 'image_retrieval_recall@1'


def write_result(record: dict, path) -> None:
    """Write a result record as UTF-8 JSON, atomically (NaN and infinities written as null).

    Args:
        record: an evaluate_* function's result.
        path (str | os.PathLike): the file to write.

    Raises:
        ValueError: a path that cannot be written (a folder, inside a cached model, an input...).
        FileNotFoundError: its folder does not exist.
    """
    path = os.fspath(path)
    check_writable_file(path, 'results file')
    with atomic_open(path, 'w', encoding='utf-8') as file:
        json.dump(_jsonable(record), file, ensure_ascii=False, indent=1)
        file.write('\n')


def read_results(paths: Iterable) -> List[dict]:
    """The records of result files, each checked to have dataset, model, task and metrics.

    Args:
        paths: result files written by write_result (or `ruclip eval --out`).

    Returns:
        The records, in the order given.

    Raises:
        ValueError: no paths, a file that is not JSON, or a record without those keys.
    """
    records = []
    for path in paths:
        try:
            with open(path, encoding='utf-8') as file:
                record = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path} is not JSON: {error}') from None
        missing = [key for key in ('dataset', 'model', 'task', 'metrics') if key not in record]
        if missing:
            raise ValueError(f'{path} is not a result file: it lacks {missing}')
        records.append(record)
    if not records:
        raise ValueError('no result files given')
    return records


def published() -> dict:
    with open(PUBLISHED_FILE, encoding='utf-8') as file:
        return json.load(file)


def headline(record: dict) -> Optional[tuple]:
    """(metric name, value) a record is reported by: the dataset's main metric (the RuCLIP table's)."""
    metrics = record['metrics']
    name = record.get('main_metric') or 'acc1'
    if record['task'] == 'zeroshot_retrieval' or name not in metrics:
        name = RETRIEVAL_HEADLINE if RETRIEVAL_HEADLINE in metrics else name
    value = metrics.get(name)
    return (name, value) if isinstance(value, (int, float)) else None


def report_table(records: List[dict]) -> str:
    """Markdown tables of result records beside the figures the RuCLIP README published.

    One table per task: datasets as rows, models as columns, each cell 'ours (published)' where
    the README published a figure for that dataset and model.

    Args:
        records: result records, e.g. read_results'.

    Returns:
        The tables as markdown text.
    """
    reference = published()
    sections = []
    for task in [t for t in TASK_TITLES if any(r['task'] == t for r in records)]:
        rows: Dict[str, Dict[str, str]] = {}
        models: List[str] = []
        metric_of: Dict[str, str] = {}
        for record in (r for r in records if r['task'] == task):
            model, dataset = _model_name(record['model']), record['dataset']
            if model not in models:
                models.append(model)
            found = headline(record)
            if found is None:
                continue
            metric_of[dataset], value = found
            cell = f'{value:.3f}'
            theirs = reference.get(task, {}).get(dataset.split('/')[-1], {}).get(model)  # wds/cifar10: cifar10
            if theirs is not None:
                cell += f' ({theirs:.3f})'
            rows.setdefault(dataset, {})[model] = cell
        header = [f'Dataset ({TASK_TITLES[task]})'] + models
        lines = ['| ' + ' | '.join(header) + ' |', '| ' + ' | '.join([':---'] + ['---:'] * len(models)) + ' |']
        for dataset in sorted(rows):
            cells = [f'{dataset}, {metric_of[dataset]}'] + [rows[dataset].get(model, '') for model in models]
            lines.append('| ' + ' | '.join(cells) + ' |')
        sections.append('\n'.join(lines))
    note = 'ours (published in the RuCLIP README, where it has the dataset and model)'
    return '\n\n'.join(sections) + f'\n\nCells: {note}.\n'


def _model_name(model: str) -> str:
    """A checkpoint folder named as a model (…/ruclip-vit-base-patch32-224) is reported as that model."""
    base = os.path.basename(os.path.normpath(model)) if model else 'model'
    return base if base.startswith('ruclip-vit-') else model


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, 'item') and hasattr(value, 'dtype'):  # a numpy or torch scalar
        return _jsonable(value.item())
    return value
