"""EvalSplit: one split of an evaluation dataset, what every loader (datasets.py, local.py) returns."""
from dataclasses import dataclass
from typing import List, Optional, Sequence


@dataclass
class EvalSplit:
    """One split of a dataset, ready to embed.

    images: file paths, bytes or PIL images, one per item; labels: class index per image
    (classification) or None; captions: the captions of each image (retrieval) or None;
    classes: the loader's own class names (English, folder names); classnames / templates: the
    Russian names and templates to prompt with; metric: the headline metric of the RuCLIP table;
    source: what identifies the data on disk (for the feature cache).
    """
    name: str
    split: str
    images: Sequence
    labels: Optional[List[int]] = None
    captions: Optional[List[List[str]]] = None
    classes: Optional[List[str]] = None
    classnames: Optional[List[str]] = None
    templates: Optional[List[str]] = None
    metric: str = 'acc1'
    source: str = ''
    reference_captions: Optional[List[List[str]]] = None  # the captions in English, line for line (COCO-SM)

    def __len__(self) -> int:
        return len(self.images)
