"""The Russian scoreboard: a list of models on a list of benchmarks, one result file each, and one
table that puts them beside the published figures of the same protocol (published_peers.json) and
the RuCLIP README's own table (published.json).

A benchmark is a protocol name (protocols.PROTOCOLS: xm3600-immich, xtd10, coco-sm, ...) or a
dataset of the RuCLIP README's table (datasets.DATASETS, scored zero-shot). Results go to
<out_dir>/<model>/<benchmark>.json; a file already there for the same model identity is read back,
not recomputed, so an interrupted run resumes where it stopped (the feature cache resumes within
a benchmark).
"""
import json
import logging
import math
import os
import re
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from .datasets import DATASETS, load_split
from .protocols import PROTOCOLS, evaluate_protocol, published_peers
from .results import report_table, write_result

logger = logging.getLogger('ruclip')
README_DATASETS = tuple(sorted(DATASETS))
README_PROTOCOL = 'ruclip-readme'  # the protocol of a README dataset's record: zero-shot as `ruclip eval zeroshot`


def benchmark_names() -> List[str]:
    return list(PROTOCOLS) + list(README_DATASETS)


def benchmark_root(benchmark: str, data_root: Optional[str], roots: Dict[str, str]) -> str:
    """Where `benchmark`'s data is: roots[benchmark] if given, else <data_root>/<its folder>."""
    if benchmark in roots:
        return roots[benchmark]
    if data_root is None:
        raise ValueError(f'no folder for {benchmark}: give --data-root or --root {benchmark}=PATH')
    if benchmark in PROTOCOLS:
        from .benchmarks import benchmark_roots
        return benchmark_roots(data_root)[PROTOCOLS[benchmark].dataset]
    return os.path.join(data_root, benchmark)


def result_path(out_dir: str, model: str, benchmark: str) -> str:
    return os.path.join(out_dir, model_slug(model), f'{benchmark}.json')


def model_slug(model: str) -> str:
    """A file-name-safe name of a --model value: a folder by its base name, anything else with
    every character other than letters, digits, '.', '_' and '-' made '_'."""
    name = os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'model'


def run_scoreboard(models: Iterable[str], benchmarks: Iterable[str], load: Callable, out_dir: str, *,
                   data_root: Optional[str] = None, roots: Optional[Dict[str, str]] = None,
                   cache_dir: Optional[str] = None, download: bool = False) -> Tuple[List[dict], List[str]]:
    """Evaluate every model on every benchmark; (records, failures). load(model) gives the model
    (a ruclip.Predictor or a peer, evaluation.models). A benchmark that fails (missing data, ...)
    is named in failures and the rest go on."""
    benchmarks, roots = list(benchmarks), dict(roots or {})
    unknown = [name for name in benchmarks if name not in benchmark_names()]
    if unknown:
        raise ValueError(f'unknown benchmarks {unknown}; choose among {benchmark_names()}')
    records, failures = [], []
    for model_name in models:
        try:
            model = load(model_name)
        except (OSError, ValueError, RuntimeError) as error:
            failures.append(f'{model_name}: {error}')
            logger.error('%s', failures[-1])
            continue
        identity = model.identity.to_dict()
        for benchmark in benchmarks:
            path = result_path(out_dir, model_name, benchmark)
            done = _read_done(path, identity)
            if done is not None:
                logger.info('%s on %s: read from %s', model_name, benchmark, path)
                records.append(done)
                continue
            try:
                record = _evaluate(model, model_name, benchmark, benchmark_root(benchmark, data_root, roots),
                                   cache_dir, download)
            except (OSError, ValueError, RuntimeError) as error:
                failures.append(f'{model_name} on {benchmark}: {error}')
                logger.error('%s', failures[-1])
                continue
            record.setdefault('model_identity', identity)
            record['runtime'] = runtime(model)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_result(record, path)
            records.append(record)
        del model
    return records, failures


def _evaluate(model, model_name: str, benchmark: str, root: str, cache_dir, download) -> dict:
    if benchmark in PROTOCOLS:
        return evaluate_protocol(model, benchmark, root, model_name=model_name, cache_dir=cache_dir, download=download)
    from .harness import evaluate_zeroshot
    download = download and benchmark != 'imagenet1k'  # torchvision cannot download ImageNet: use what is there
    record = evaluate_zeroshot(model, load_split(benchmark, root, download=download), model_name, cache_dir=cache_dir)
    record['protocol'] = README_PROTOCOL
    return record


def from_scoreboard(record: dict) -> bool:
    """Whether a result record was written by the scoreboard (a linear probe's 'protocol' is its own)."""
    return record.get('protocol') in PROTOCOLS or record.get('protocol') == README_PROTOCOL


def _read_done(path: str, identity: dict) -> Optional[dict]:
    """The record at path if it is complete and was made by the model of `identity`."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as file:
            record = json.load(file)
    except (OSError, json.JSONDecodeError):
        return None
    recorded = record.get('model_identity') or {}
    return record if recorded.get('fingerprint') == identity['fingerprint'] and 'metrics' in record else None


def runtime(model) -> dict:
    """{'backend', 'dtype'} of what computes the model's latents (a peer adds its family), from its identity."""
    return getattr(model, 'runtime', None) or dict(backend=model.identity.backend, dtype=model.identity.dtype)


# ---- the table -----------------------------------------------------------------------------------

def scoreboard_table(records: List[dict]) -> str:
    """Markdown: per protocol, a table of the models run here and the published figures of that
    protocol, best first; then the RuCLIP README's datasets beside its own table."""
    from .results import _model_name
    peers = published_peers()['protocols']
    sections = ['# Russian scoreboard\n\nEach table compares figures of one protocol only. "this run": measured '
                'by `ruclip eval scoreboard` with the weights it was given; "published": copied from the source '
                'under the table (ruclip/evaluation/published_peers.json).']
    for name, spec in PROTOCOLS.items():
        ours = [r for r in records if r.get('protocol') == name]
        published = peers.get(name, {}).get('entries', [])
        if not ours and not published:
            continue
        columns = _columns(name)
        rows = []
        run_as = {entry['run_as']: entry for entry in published if entry.get('run_as')}
        for record in ours:
            theirs = run_as.get(record['model'])
            note = 'this run' + (f" (published {_cell(theirs['metrics'].get(spec.headline))})" if theirs else '')
            rows.append((_model_name(record['model']), note, [record['metrics'].get(c) for c in columns]))
        for entry in published:
            note = f"published ({entry['from']})" if entry.get('from') else 'published'
            rows.append((entry['model'], note, [entry['metrics'].get(c) for c in columns]))
        rows.sort(key=lambda row: -(row[2][0] if isinstance(row[2][0], (int, float)) else -1))
        lines = [f'## {name}\n\n{spec.description}. Headline: {spec.headline}.\n',
                 '| model | figure | ' + ' | '.join(columns) + ' |', '| :--- | :--- |' + ' ---: |' * len(columns)]
        lines += [f'| {model} | {note} | ' + ' | '.join(_cell(v) for v in values) + ' |'
                  for model, note, values in rows]
        source = peers.get(name, {}).get('source')
        lines.append(f'\nPublished: {source}' if source else '\nNo published figure of this protocol is shipped.')
        sections.append('\n'.join(lines))
    readme = [r for r in records if r.get('protocol') == README_PROTOCOL]
    if readme:
        sections.append("## The RuCLIP README's datasets\n\n" + report_table(readme))
    return '\n\n'.join(sections) + '\n'


def _columns(protocol: str) -> List[str]:
    headline = PROTOCOLS[protocol].headline
    extra = {'xm3600-immich': ['image_retrieval_recall@1', 'image_retrieval_recall@5', 'image_retrieval_recall@10'],
             'xtd10': ['image_retrieval_recall@1', 'text_retrieval_recall@10'],
             'coco-sm': ['image_retrieval_recall@5', 'image_retrieval_recall@10', 'text_retrieval_recall@1',
                         'image_retrieval_ndcg@20', 'text_retrieval_ndcg@20'],
             'xm3600-mteb': ['image_retrieval_recall@1', 'image_retrieval_recall@10']}.get(protocol, [])
    return [headline] + extra


def _cell(value) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, float) and math.isnan(value):
        return ''
    return f'{value:.4f}'
