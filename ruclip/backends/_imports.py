"""OpenVINO and NNCF as ruclip imports them: without their usage telemetry. ruclip imports neither
anywhere else (`import openvino` after this is the module already imported here).

Both send usage statistics to Google Analytics unless the user has opted out (`opt_in_out --opt_out`,
which writes a consent file in the home folder): openvino as it is imported, NNCF on every quantize
call; and before sending, each writes a client id into the home folder (~/intel). A ruclip command or
ruclip.load makes no network request the user did not ask for, so the two are imported with the
switches they read as they are imported: CI=true, on which openvino_telemetry declines (and writes
nothing), and NNCF_CI, on which NNCF replaces its telemetry by a stub. Both variables are set for the
import only and then restored, so the user's environment, their child processes and their own later
calls into the telemetry (openvino.convert_model decides again) are left as they were.
"""
import os
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from .._optional import require

NO_TELEMETRY = {'CI': 'true', 'NNCF_CI': '1'}


def import_openvino(purpose: str = "backend='openvino'") -> ModuleType:
    """The openvino module, imported without telemetry; an ImportError naming the extra if it is missing."""
    with _environment(NO_TELEMETRY):
        return require('openvino', 'openvino', purpose)


def import_nncf(purpose: str = "int8 (dtype='int8') on the OpenVINO backend") -> ModuleType:
    """The nncf module, imported without telemetry (openvino first, which it imports)."""
    import_openvino(purpose)
    with _environment(NO_TELEMETRY):
        return require('nncf', 'openvino', purpose)


@contextmanager
def _environment(values: dict) -> Iterator[None]:
    """os.environ with `values` set, restored to what it was on leaving."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
