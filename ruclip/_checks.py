"""Argument checks shared by the public functions: each returns the value in its usual form or
raises an error that names the argument and says what was expected."""
import math
import numbers
import operator
from typing import Iterable, List, Tuple


def count(name: str, value, minimum: int = 1, maximum: int = None) -> int:
    """value as an int (numpy integers too) >= minimum (and <= maximum), else a ValueError naming `name`."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        kind = 'a positive integer' if minimum == 1 else f'an integer >= {minimum}'
        raise ValueError(f'{name} must be {kind}, got {value!r}')
    if maximum is not None and number > maximum:
        raise ValueError(f'{name} must be at most {maximum}, got {number}')
    return number


def str_list(values, name: str, expected: str = 'a list of str') -> List[str]:
    """values, any iterable of str (list, tuple, ndarray, dict keys, generator...), as a non-empty
    list; a lone str, a non-iterable or an item that is not a str is a TypeError naming `name`."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f'{name} must be {expected} (or any iterable of str), got {type(values).__name__}')
    values = list(values)
    if not values:
        raise ValueError(f'{name} is empty: give at least one str')
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f'every item of {name} must be a str, got {type(value).__name__}: {value!r}')
    return values


MAX_MEAN = 1e3  # an image mean or std is of the order of the pixels, which are in [0, 1]
MIN_STD = 1e-6


def three_numbers(name: str, values, positive: bool = False) -> Tuple[float, float, float]:
    """values as 3 finite floats, one per RGB channel, each within +-MAX_MEAN (an image mean, or a
    std, which must be `positive`: at least MIN_STD), else a ValueError naming `name`."""
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, (str, bytes)) else []
    if len(items) != 3 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items):
        raise ValueError(f'{name} must be 3 numbers (one per RGB channel), got {values!r}')
    floats = tuple(float(v) for v in items)
    if not all(math.isfinite(v) for v in floats):
        raise ValueError(f'{name} must be finite numbers, got {list(floats)}')
    if positive and min(floats) <= 0:
        raise ValueError(f'{name} must be positive (pixels are divided by it), got {list(floats)}')
    if positive and min(floats) < MIN_STD:
        raise ValueError(f'{name} must be at least {MIN_STD} (pixels are divided by it; a smaller one, a '
                         f'denormal say, would blow them up), got {list(floats)}')
    if max(abs(v) for v in floats) > MAX_MEAN:
        raise ValueError(f'{name} must be within +-{MAX_MEAN:g} (pixels are in [0, 1]), got {list(floats)}')
    return floats
