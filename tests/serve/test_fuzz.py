"""A fuzz pass over the OpenAPI schema (schemathesis): whatever a client sends, no answer is a 5xx."""
import pytest

pytest.importorskip('fastapi')  # the [serve] extra
pytest.importorskip('schemathesis')  # in the [test] extra
import schemathesis  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

import ruclip  # noqa: E402
from helpers.library import predictor_for, write_library  # noqa: E402
from helpers.serving import live  # noqa: E402
from ruclip.serve import create_app  # noqa: E402


@pytest.fixture(scope='module')
def api_schema(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp('fuzz')
    write_library(folder / 'photos', 6, size=(40, 30))
    index = ruclip.ImageIndex(folder / 'photos.index', predictor_for(tiny_checkpoint))
    index.update([folder / 'photos'])
    with live(create_app(index=index, max_inputs=8, max_body=100_000)) as url:
        yield schemathesis.openapi.from_url(f'{url}/openapi.json')


schema = schemathesis.pytest.from_fixture('api_schema')


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_no_request_makes_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])
