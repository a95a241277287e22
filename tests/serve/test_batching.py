"""Dynamic batching: concurrent requests merged into one forward pass, a full queue answered 503, never a reset."""
import asyncio
import threading
import time

import httpx
import numpy as np
import pytest

from helpers.serving import data_uri, live, png_bytes

pytest.importorskip('fastapi')  # the [serve] extra
from ruclip.serve import create_app  # noqa: E402
from ruclip.serve.batching import Batcher, QueueFull  # noqa: E402


def test_batcher_merges_waiting_requests_and_refuses_past_the_queue():
    release = threading.Event()
    calls = []

    def work(items):
        release.wait(10)
        calls.append(list(items))
        return [item * 10 for item in items]

    async def scenario():
        batcher = Batcher(work, name='test', max_batch=8, max_wait_ms=1, max_queue=6)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit([1]))
            await asyncio.sleep(0.05)  # the first batch runs (blocked in work): the next requests wait
            waiting = [asyncio.ensure_future(batcher.submit([n, n + 1])) for n in (2, 4, 6)]
            await asyncio.sleep(0.01)
            assert batcher.queued == 6
            with pytest.raises(QueueFull):
                await batcher.submit([8])
            release.set()
            return await first, await asyncio.gather(*waiting)
        finally:
            await batcher.stop()

    first, rest = asyncio.run(scenario())
    assert first == [10] and rest == [[20, 30], [40, 50], [60, 70]]
    assert calls == [[1], [2, 3, 4, 5, 6, 7]]  # the three waiting requests in one call, in order


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    def work(items):
        if 'bad' in items:
            raise RuntimeError('the model failed')
        return items

    async def scenario():
        batcher = Batcher(work, name='test', max_batch=1, max_wait_ms=0)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match='the model failed'):
                await batcher.submit(['bad'])
            return await batcher.submit(['good'])
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == ['good']


@pytest.mark.parametrize('queue', [4096, 8])
def test_64_concurrent_clients_are_all_answered(predictor, queue):
    images = [png_bytes(seed, (48, 40)) for seed in range(64)]
    app = create_app(predictor, max_batch=32, max_wait_ms=20, max_queue=queue)
    start = threading.Barrier(64)
    answers = [None] * 64

    def client(i, url, http):
        body = {'input': data_uri(images[i]), 'modality': 'image'} if i % 2 else {'input': f'картинка номер {i}'}
        start.wait()
        response = http.post(f'{url}/v1/embeddings', json=body)
        answers[i] = (response.status_code, response.headers.get('retry-after'), response.json())

    with live(app) as url, httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as http:
        threads = [threading.Thread(target=client, args=(i, url, http)) for i in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert httpx.get(f'{url}/health').status_code == 200  # alive after
        metrics = httpx.get(f'{url}/metrics').text
    assert all(answer is not None for answer in answers)
    assert {status for status, _, _ in answers} <= {200, 503}
    expected = predictor.embed_images(images).latents.numpy()
    for i, (status, retry_after, body) in enumerate(answers):
        if status == 503:
            assert retry_after == '1' and body['error']['code'] == 'queue_full'
        elif i % 2:
            np.testing.assert_allclose(body['data'][0]['embedding'], expected[i], atol=1e-5)
    ok = sum(status == 200 for status, _, _ in answers)
    towers = app.state.served.towers
    assert ok >= (64 if queue > 64 else 8)
    assert max(towers.text.stats.largest, towers.image.stats.largest) > 1  # merged
    assert towers.text.stats.items + towers.image.stats.items == ok
    assert 'ruclip_batch_size_bucket{le="1.0",tower="image"}' in metrics and 'ruclip_queue_depth' in metrics
    count = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith('ruclip_batch_size_count'))
    assert count == towers.text.stats.batches + towers.image.stats.batches < ok


def test_a_request_not_answered_in_time_gets_504(predictor):
    from fastapi.testclient import TestClient

    app = create_app(predictor, timeout=0.2)
    slow = threading.Event()
    work = app.state.served.towers.text.work
    app.state.served.towers.text.work = lambda items: (slow.wait(10), work(items))[1]
    with TestClient(app, base_url='http://127.0.0.1') as client:
        response = client.post('/v1/embeddings', json={'input': 'кошка'})
        assert response.status_code == 504 and response.json()['error']['code'] == 'timeout'
        slow.set()
        assert client.post('/v1/embeddings', json={'input': 'кошка'}).status_code == 200  # the batcher goes on


def test_the_server_turns_nagles_algorithm_off_on_its_connections():
    """The listening socket says it is TCP, so asyncio (which uvicorn serves through) sets TCP_NODELAY on every
    accepted connection; without it each answer on a kept-alive connection waited ~40 ms for the client's ACK."""
    import asyncio
    import socket

    from ruclip.serve.server import listening_socket

    sock = listening_socket('127.0.0.1', 0)

    async def accepted_nodelay() -> int:
        seen = asyncio.get_running_loop().create_future()

        def connected(reader, writer):
            seen.set_result(writer.get_extra_info('socket').getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value

    assert asyncio.run(accepted_nodelay()) != 0


def test_kept_alive_requests_are_answered_without_a_delayed_ack_wait(predictor):
    import http.client
    import statistics

    with live(create_app(predictor)) as url:
        connection = http.client.HTTPConnection('127.0.0.1', int(url.rsplit(':', 1)[1]), timeout=30)
        seconds = []
        for _ in range(7):  # one connection, kept alive: the second and later answers were each ~40 ms late
            started = time.perf_counter()
            connection.request('GET', '/health')
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
            seconds.append(time.perf_counter() - started)
        connection.close()
    assert statistics.median(seconds[1:]) < 0.030, seconds
