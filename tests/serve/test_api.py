"""The JSON API: embeddings equal to the Predictor's through the openai client and plain HTTP, classify
and rank equal to the library's, models and health."""
import base64
import sys

import httpx
import numpy as np
import pytest

import ruclip
from helpers.serving import data_uri, live, png_bytes

pytest.importorskip('fastapi')  # the [serve] extra
pytest.importorskip('openai')  # in the [test] extra
from ruclip.serve import create_app  # noqa: E402

TEXTS = ['кошка на диване', 'собака', 'красный автомобиль у дома']


@pytest.fixture(scope='module')
def server(predictor):
    app = create_app(predictor, model_name='tiny', api_key='secret-key')
    with live(app) as url:
        yield url


@pytest.fixture(scope='module')
def images():
    return [png_bytes(seed, size) for seed, size in [(1, (64, 48)), (2, (30, 90)), (3, (224, 224))]]


def test_openai_client_gets_the_predictors_latents(server, predictor, images):
    import openai

    client = openai.OpenAI(base_url=f'{server}/v1', api_key='secret-key', max_retries=0)
    assert [model.id for model in client.models.list()] == ['tiny']
    expected = predictor.get_caption_latents(TEXTS).numpy()
    for options in ({}, {'encoding_format': 'float'}):  # unless told, the client asks for base64 and decodes it
        response = client.embeddings.create(model='tiny', input=TEXTS, **options)
        got = np.array([item.embedding for item in sorted(response.data, key=lambda item: item.index)])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert response.model == 'tiny' and response.usage.prompt_tokens > len(TEXTS)
    response = client.embeddings.create(model='tiny', input=TEXTS, encoding_format='base64')  # given as it came
    got = np.array([np.frombuffer(base64.b64decode(item.embedding), dtype='<f4') for item in response.data])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    one = client.embeddings.create(model='tiny', input=TEXTS[1])
    np.testing.assert_allclose(one.data[0].embedding, expected[1], atol=1e-5)
    labels = client.embeddings.create(model='tiny', input=TEXTS, extra_body={'templates': True})
    np.testing.assert_allclose([item.embedding for item in labels.data], predictor.get_text_latents(TEXTS).numpy(),
                               atol=1e-5)
    pictures = client.embeddings.create(model='tiny', input=[data_uri(image) for image in images],
                                        extra_body={'modality': 'image'})
    np.testing.assert_allclose([item.embedding for item in pictures.data],
                               predictor.embed_images(images).latents.numpy(), atol=1e-5)
    with pytest.raises(openai.NotFoundError, match='not served here'):
        client.embeddings.create(model='another', input='кошка')
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f'{server}/v1', api_key='wrong', max_retries=0).embeddings.create(model='tiny',
                                                                                                input='кошка')


def test_plain_http_float_and_base64(server, predictor, images):
    headers = {'Authorization': 'Bearer secret-key'}
    body = {'input': [data_uri(images[2]), data_uri(images[0], 'image/jpeg')], 'modality': 'image'}
    response = httpx.post(f'{server}/v1/embeddings', json=body, headers=headers)
    assert response.status_code == 200, response.text
    got = np.array([item['embedding'] for item in response.json()['data']])
    np.testing.assert_allclose(got, predictor.embed_images([images[2], images[0]]).latents.numpy(), atol=1e-5)
    response = httpx.post(f'{server}/v1/embeddings', json={'input': 'собака', 'encoding_format': 'base64'},
                          headers=headers)
    decoded = np.frombuffer(base64.b64decode(response.json()['data'][0]['embedding']), dtype='<f4')
    np.testing.assert_allclose(decoded, predictor.get_caption_latents(['собака'])[0].numpy(), atol=1e-5)
    assert httpx.get(f'{server}/health').json() == {'status': 'ok', 'model': 'tiny'}  # no key needed


def test_classify_and_rank_equal_the_library(server, predictor, images):
    headers = {'Authorization': 'Bearer secret-key'}
    labels = ['кошка', 'собака', 'дом', 'море']
    body = {'images': [data_uri(image) for image in images], 'labels': labels, 'k': 2}
    response = httpx.post(f'{server}/v1/classify', json=body, headers=headers)
    assert response.status_code == 200, response.text
    expected = ruclip.classify(predictor, images, labels, k=2).tolist()
    for row, want in zip(response.json()['data'], expected):
        assert [entry['label'] for entry in row['labels']] == [entry['label'] for entry in want]
        np.testing.assert_allclose([entry['probability'] for entry in row['labels']],
                                   [entry['score'] for entry in want], atol=1e-5)
    templates = ['на фото {}', '{} крупным планом']
    response = httpx.post(f'{server}/v1/classify', json=dict(body, templates=templates), headers=headers)
    scale = predictor.clip_model.logit_scale.exp()
    want = ruclip.probabilities(predictor.get_image_latents(images),
                                predictor.get_text_latents(labels, templates=templates), scale)
    np.testing.assert_allclose([[entry['probability'] for entry in row['labels']] for row in response.json()['data']],
                               want.topk(2).values.numpy(), atol=1e-5)
    body = {'images': [data_uri(image) for image in images], 'texts': TEXTS, 'k': 3}
    response = httpx.post(f'{server}/v1/rank', json=body, headers=headers)
    assert response.status_code == 200, response.text
    ranking = ruclip.rank(predictor, images, TEXTS, k=3)
    for direction in ('texts_per_image', 'images_per_text'):
        got, want = response.json()[direction], getattr(ranking, direction).tolist()
        assert [[entry['index'] for entry in row] for row in got] == [[entry['index'] for entry in row] for row in want]
        np.testing.assert_allclose([[entry['score'] for entry in row] for row in got],
                                   [[entry['score'] for entry in row] for row in want], atol=1e-5)


def test_models_and_openapi(server):
    headers = {'Authorization': 'Bearer secret-key'}
    models = httpx.get(f'{server}/v1/models', headers=headers).json()
    assert models['data'][0]['id'] == 'tiny' and models['data'][0]['embed_dim'] > 0
    schema = httpx.get(f'{server}/openapi.json', headers=headers).json()
    assert {'/v1/embeddings', '/v1/classify', '/v1/rank', '/v1/models', '/health'} <= set(schema['paths'])


def test_metrics_count_requests_by_route(server):
    headers = {'Authorization': 'Bearer secret-key'}
    httpx.get(f'{server}/v1/nowhere/1', headers=headers)
    metrics = httpx.get(f'{server}/metrics', headers=headers).text
    assert 'ruclip_requests_total{method="POST",route="/v1/embeddings",status="200"}' in metrics
    assert 'route="unmatched",status="404"' in metrics and '/v1/nowhere' not in metrics
    assert 'ruclip_request_seconds_bucket' in metrics
    assert httpx.get(f'{server}/metrics').status_code == 401  # behind the key, as the API


def test_without_prometheus_client_metrics_says_so(predictor, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setitem(sys.modules, 'prometheus_client', None)
    with TestClient(create_app(predictor), base_url='http://127.0.0.1') as client:
        response = client.get('/metrics')
        assert response.status_code == 404 and 'pip install prometheus-client' in response.json()['error']['message']
        assert client.post('/v1/embeddings', json={'input': 'кошка'}).status_code == 200
