"""One input row (Sample) and fetching its image when it is a URL, in threads, with a timeout."""
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, Optional, Union

FETCH_LOOKAHEAD = 32  # URLs being fetched ahead of the one being consumed


@dataclass
class Sample:
    """One input row. image: a file path or encoded bytes to embed (None until a URL is fetched);
    error: why it cannot be embedded (it then goes to failed_{i}.parquet)."""
    image_path: str
    key: str
    caption: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict)
    image: Union[str, bytes, None] = None
    url: Optional[str] = None
    error: Optional[str] = None

    def metadata(self, with_caption: bool) -> dict:
        """The row of metadata_{i}.parquet: image_path, caption (when the input has captions), key, the rest."""
        row = dict(image_path=self.image_path)
        if with_caption:
            row['caption'] = self.caption
        return dict(row, key=self.key, **self.extra)


def fetch(sample: Sample, timeout: float) -> Sample:
    """The sample with its URL's bytes as image, or with the error that kept them from coming."""
    if sample.url is None or sample.image is not None or sample.error:
        return sample
    try:
        with urllib.request.urlopen(sample.url, timeout=timeout) as response:
            sample.image = response.read()
    except Exception as error:  # noqa: BLE001 - any failure of one URL is that row's failure
        sample.error = f'cannot fetch {sample.url}: {type(error).__name__}: {error}'
    return sample


def fetched(samples: Iterable[Sample], timeout: float, workers: int = 8) -> Iterator[Sample]:
    """samples in order, URLs fetched in `workers` threads up to FETCH_LOOKAHEAD ahead."""
    with ThreadPoolExecutor(workers, thread_name_prefix='ruclip-fetch') as pool:
        pending = deque()
        for sample in samples:
            pending.append(pool.submit(fetch, sample, timeout) if sample.url else sample)
            if len(pending) > FETCH_LOOKAHEAD:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


def _result(item):
    return item if isinstance(item, Sample) else item.result()
