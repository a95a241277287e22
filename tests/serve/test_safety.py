"""Refusals: Host header (DNS rebinding), API key, body and pixel limits, bad requests and malformed HTTP,
each answered with a 4xx JSON error, never a dropped connection or a traceback; CORS only when asked."""
import base64
import functools
import http.server
import socket
import threading

import httpx
import pytest

pytest.importorskip('fastapi')  # the [serve] extra
from fastapi.testclient import TestClient  # noqa: E402

from helpers.serving import data_uri, live, png_bytes  # noqa: E402
from ruclip.serve import create_app  # noqa: E402


@pytest.fixture(scope='module')
def client(predictor):
    app = create_app(predictor, model_name='tiny', max_inputs=4, max_body=200_000, max_pixels=100 * 100)
    with TestClient(app, base_url='http://127.0.0.1', raise_server_exceptions=False) as client:
        yield client


def error_of(response, status):
    assert response.status_code == status, response.text
    assert response.headers['content-type'].startswith('application/json')
    error = response.json()['error']
    assert error['message'] and error['code']
    return error


@pytest.mark.parametrize('body, code, words', [
    ({'input': 5}, 'invalid_request', 'input'),
    ({'input': [1, 2]}, 'invalid_request', 'input'),
    ({'input': {'text': 'кошка'}}, 'invalid_request', 'input'),
    ({}, 'invalid_request', 'input: Field required'),
    ({'input': 'кошка', 'encoding_format': 'hex'}, 'invalid_request', 'encoding_format'),
    ({'input': 'кошка', 'modality': 'audio'}, 'invalid_request', 'modality'),
    ({'input': 'кошка', 'templates': 'yes'}, 'invalid_request', 'templates'),
    ({'input': 'кошка', 'dimensions': 7}, 'invalid_input', 'dimensions'),
    ({'input': []}, 'empty_input', 'input is empty'),
    ({'input': ''}, 'empty_input', 'input[0] is empty'),
    ({'input': ['кошка', '   ']}, 'empty_input', 'input[1] is empty'),
    ({'input': ['а', 'б', 'в', 'г', 'д']}, 'too_many_inputs', 'at most 4'),
    ({'input': data_uri(b'not an image'), 'modality': 'image'}, 'bad_image', 'image 0: cannot read image'),
    ({'input': 'data:image/png;base64,@@@', 'modality': 'image'}, 'invalid_input', 'not valid base64'),
    ({'input': 'кошка', 'modality': 'image'}, 'invalid_input', 'expected a data URI'),
    ({'input': 'http://127.0.0.1:1/cat.jpg', 'modality': 'image'}, 'invalid_input', '--allow-urls'),
    ({'input': data_uri(png_bytes(1, (101, 100))), 'modality': 'image'}, 'image_too_large', 'over the limit'),
    ({'input': data_uri(png_bytes(1)), 'modality': 'image', 'templates': True}, 'invalid_input', 'texts only'),
])
def test_bad_embedding_requests_get_400_json(client, body, code, words):
    error = error_of(client.post('/v1/embeddings', json=body), 400)
    assert error['code'] == code and words in error['message']


@pytest.mark.parametrize('path, body, status, words', [
    ('/v1/classify', {'images': [], 'labels': ['кошка']}, 400, 'images is empty'),
    ('/v1/classify', {'images': ['data:,x'], 'labels': []}, 400, 'labels is empty'),
    ('/v1/classify', {'images': [data_uri(png_bytes(1))], 'labels': ['кошка'], 'k': 0}, 400, 'k: Input should be'),
    ('/v1/classify', {'images': [data_uri(png_bytes(1))], 'labels': ['кошка'], 'k': 10 ** 30}, 400, 'k: Input'),
    ('/v1/classify', {'images': [data_uri(png_bytes(1))], 'labels': ['кошка'], 'templates': ['нет скобок']}, 400,
     'needs a {}'),
    ('/v1/classify', {'images': [data_uri(png_bytes(1))], 'labels': ['кошка'], 'extra': 1}, 400, 'extra'),
    ('/v1/rank', {'images': [data_uri(png_bytes(1))], 'texts': 'кошка'}, 400, 'texts: Input should be a valid list'),
    ('/v1/rank', {'images': [data_uri(b'GIF89a broken')], 'texts': ['кошка']}, 400, 'image 0: cannot read image'),
    ('/v1/embeddings', {'input': 'кошка', 'model': 'gpt-4'}, 404, "model 'gpt-4' is not served here"),
])
def test_bad_task_requests_get_4xx_json(client, path, body, status, words):
    assert words in error_of(client.post(path, json=body), status)['message']


def test_bodies_routes_and_methods(client):
    error_of(client.post('/v1/embeddings', content='{"input": "кош'.encode(), headers={'content-type': 'application/json'}),
             400)
    assert 'Content-Type: application/json' in error_of(client.post('/v1/embeddings', content=b'input=cat'),
                                                        400)['message']
    assert error_of(client.post('/v1/embeddings', json={'input': 'а' * 300_000}), 413)['code'] == 'request_too_large'
    chunks = (b'{"input": "' + b'a' * 10_000 for _ in range(30))  # no Content-Length: read up to the limit
    assert error_of(client.post('/v1/embeddings', content=chunks), 413)['code'] == 'request_too_large'
    error_of(client.get('/nowhere'), 404)
    error_of(client.get('/v1/embeddings'), 405)
    error_of(client.get('/thumb/1'), 404)  # no index: no page


@pytest.mark.parametrize('host, accepted', [
    ('127.0.0.1', True), ('127.0.0.1:8000', True), ('localhost:8000', True), ('[::1]:8000', True),
    ('LOCALHOST.', True), ('evil.example', False), ('evil.example:8000', False), ('127.0.0.1.evil.example', False),
    ('10.0.0.5', False), ('', False), ('proxy.example', True),
])
def test_only_the_servers_own_names_are_answered(predictor, host, accepted):
    app = create_app(predictor, allowed_hosts=['proxy.example'])
    with TestClient(app, base_url='http://127.0.0.1') as client:
        response = client.get('/v1/models', headers={'host': host})
    if accepted:
        assert response.status_code == 200
    else:
        assert 'is not a name of this server' in error_of(response, 400)['message']


def test_listening_on_every_address_answers_its_hostname_and_any_address(predictor):
    app = create_app(predictor, host='0.0.0.0')
    with TestClient(app, base_url='http://127.0.0.1') as client:
        for host, status in [(socket.gethostname(), 200), ('192.168.1.20:8000', 200), ('evil.example', 400)]:
            assert client.get('/v1/models', headers={'host': host}).status_code == status


def test_api_key(predictor):
    app = create_app(predictor, api_key='s3cret')
    with TestClient(app, base_url='http://127.0.0.1') as client:
        for headers in [{}, {'authorization': 'Bearer wrong'}, {'authorization': 'Bearer'},
                        {'authorization': 's3cret'}, {'authorization': 'Basic !!!'},
                        {'authorization': 'Bearer s3cret2'}, {'authorization': 'Bearer ключ'.encode()}]:
            response = client.post('/v1/embeddings', json={'input': 'кошка'}, headers=headers)
            assert error_of(response, 401)['code'] == 'invalid_api_key'
            assert response.headers['www-authenticate'] == 'Bearer'
        assert client.post('/v1/embeddings', json={'input': 'кошка'},
                           headers={'authorization': 'Bearer s3cret'}).status_code == 200
        basic = base64.b64encode(b'anyone:s3cret').decode()
        assert client.get('/v1/models', headers={'authorization': f'Basic {basic}'}).status_code == 200
        assert client.get('/health').status_code == 200  # a probe needs no key
        assert client.get('/').headers['www-authenticate'].startswith('Basic')  # the browser asks for it


def test_cors_only_when_asked(predictor):
    origin = {'origin': 'https://app.example'}
    with TestClient(create_app(predictor), base_url='http://127.0.0.1') as client:
        assert 'access-control-allow-origin' not in client.get('/v1/models', headers=origin).headers
    with TestClient(create_app(predictor, cors=['https://app.example'], api_key='k'),
                    base_url='http://127.0.0.1') as client:
        preflight = client.options('/v1/embeddings', headers={**origin, 'access-control-request-method': 'POST',
                                                              'access-control-request-headers': 'authorization'})
        assert preflight.status_code == 200
        assert preflight.headers['access-control-allow-origin'] == 'https://app.example'
        response = client.get('/v1/models', headers={**origin, 'authorization': 'Bearer k'})
        assert response.headers['access-control-allow-origin'] == 'https://app.example'


def test_image_urls_only_with_allow_urls(predictor, tmp_path):
    (tmp_path / 'cat.png').write_bytes(png_bytes(4))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    images = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{images.server_address[1]}'
    try:
        with TestClient(create_app(predictor, allow_urls=True), base_url='http://127.0.0.1') as client:
            response = client.post('/v1/embeddings', json={'input': f'{url}/cat.png', 'modality': 'image'})
            assert response.status_code == 200, response.text
            assert response.json()['data'][0]['embedding'] == pytest.approx(
                predictor.embed_images([png_bytes(4)]).latents[0].tolist(), abs=1e-5)
            error = error_of(client.post('/v1/embeddings', json={'input': f'{url}/missing.png', 'modality': 'image'}),
                             400)
            assert 'cannot fetch' in error['message']
    finally:
        images.shutdown()


@pytest.mark.parametrize('request_bytes', [
    b'POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n{}',
    b'POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n{}',
    b'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n',
    b'NOT HTTP AT ALL\r\n\r\n',
], ids=['letters', 'negative', 'no colon', 'not http'])
def test_malformed_http_gets_a_json_400(predictor, request_bytes):
    with live(create_app(predictor)) as url:
        port = int(url.rsplit(':', 1)[1])
        with socket.create_connection(('127.0.0.1', port), timeout=10) as connection:
            connection.sendall(request_bytes)
            answer = b''
            while chunk := connection.recv(65536):
                answer += chunk
        assert httpx.get(f'{url}/health').status_code == 200
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 400') and b'application/json' in head, answer[:300]
    assert b'malformed HTTP request' in body
