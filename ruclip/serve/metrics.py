"""Request logs and Prometheus metrics (/metrics, when prometheus-client is installed).

Metrics, in a registry of the app's own: ruclip_requests_total{route,method,status},
ruclip_request_seconds{route}, ruclip_batch_size{tower}, ruclip_batch_seconds{tower},
ruclip_queue_depth{tower} (items waiting). Routes are the app's route templates ('/thumb/{row_id}'),
'unmatched' for the rest, so a scan of random paths cannot grow the label set.
"""
import logging
import time
from typing import Optional

logger = logging.getLogger('ruclip.serve')
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The app's counters; `registry` is None when prometheus-client is not installed."""

    def __init__(self, towers=None):
        try:
            import prometheus_client as prometheus
        except ImportError:
            self.registry = None
            return
        self.registry = prometheus.CollectorRegistry()
        self.requests = prometheus.Counter('ruclip_requests', 'HTTP requests answered',
                                           ['route', 'method', 'status'], registry=self.registry)
        self.latency = prometheus.Histogram('ruclip_request_seconds', 'time to answer a request', ['route'],
                                            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = prometheus.Histogram('ruclip_batch_size', 'items in one forward pass', ['tower'],
                                               buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = prometheus.Histogram('ruclip_batch_seconds', 'time of one forward pass', ['tower'],
                                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        queue = prometheus.Gauge('ruclip_queue_depth', 'items waiting for a forward pass', ['tower'],
                                 registry=self.registry)
        for batcher in (towers.text, towers.image) if towers is not None else ():
            queue.labels(batcher.name).set_function(lambda batcher=batcher: batcher.queued)
            batcher.on_batch = lambda size, seconds, tower=batcher.name: self._batch(tower, size, seconds)

    def _batch(self, tower: str, size: int, seconds: float) -> None:
        self.batch_size.labels(tower).observe(size)
        self.batch_seconds.labels(tower).observe(seconds)

    def exposition(self) -> Optional[bytes]:
        """The metrics in Prometheus' text format, None without prometheus-client."""
        if self.registry is None:
            return None
        from prometheus_client import generate_latest
        return generate_latest(self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if self.registry is not None:
            self.requests.labels(route, method, str(status)).inc()
            self.latency.labels(route).observe(seconds)


class RequestLog:
    """ASGI middleware: one log line per request ('ruclip.serve' logger, INFO) and its metrics."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_status(message):
            nonlocal status
            if message['type'] == 'http.response.start':
                status = message['status']
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get('route'), 'path', 'unmatched')
            self.metrics.observe(route, scope['method'], status, seconds)
            client = scope.get('client') or ('-',)
            logger.info('%s "%s %s" %d %.1f ms', client[0], scope['method'], scope['path'], status, seconds * 1000)
