"""Argument checks shared by the public functions: each returns the value in its usual form or
raises an error that names the argument and says what was expected."""
import numbers
import operator
from typing import Iterable, List, Tuple


def count(name: str, value, minimum: int = 1) -> int:
    """value as an int (numpy integers too) >= minimum, else a ValueError naming `name`."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        kind = 'a positive integer' if minimum == 1 else f'an integer >= {minimum}'
        raise ValueError(f'{name} must be {kind}, got {value!r}')
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


def three_numbers(name: str, values, positive: bool = False) -> Tuple[float, float, float]:
    """values as 3 floats, one per RGB channel (an image mean or std, which must be `positive`),
    else a ValueError naming `name`."""
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, (str, bytes)) else []
    if len(items) != 3 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items):
        raise ValueError(f'{name} must be 3 numbers (one per RGB channel), got {values!r}')
    floats = tuple(float(v) for v in items)
    if positive and min(floats) <= 0:
        raise ValueError(f'{name} must be positive (pixels are divided by it), got {list(floats)}')
    return floats
