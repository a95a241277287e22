"""Dynamic batching: the items of concurrent requests merged into one call of the model.

A Batcher owns one queue and one worker thread for one tower. Requests put their items in the queue
(submit); the batcher takes the oldest waiting requests as soon as they hold `max_batch` items or the
oldest has waited `max_wait_ms`, runs `work` on all their items at once in its thread (never on the
event loop), and hands each request its own slice of the results. While one batch runs, new requests
wait and form the next one, so under load batches grow by themselves. At most `max_queue` items may
wait: past that, submit raises QueueFull at once (the app answers 503 with Retry-After). A request
not answered within `timeout` seconds raises TimeoutError (504), and its items are dropped if they
have not started.
"""
import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

logger = logging.getLogger('ruclip.serve')


class QueueFull(Exception):
    """The batcher's queue holds max_queue items: the request should be retried later."""


@dataclass
class _Request:
    items: Sequence
    future: asyncio.Future
    arrived: float  # loop.time()


@dataclass
class BatchStats:
    """What a batcher did, for /metrics and tests: batches run, items in them, the largest batch."""
    batches: int = 0
    items: int = 0
    largest: int = 0
    sizes: List[int] = field(default_factory=list)  # the last RECENT_SIZES batch sizes

    RECENT_SIZES = 1000

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.largest = max(self.largest, size)
        self.sizes = (self.sizes + [size])[-self.RECENT_SIZES:]


class Batcher:
    """Merges the items of concurrent submit() calls into calls of work(items) -> results (one per item).

    work runs in this batcher's own thread, one call at a time. A request larger than max_batch is
    run whole, alone; the model's own batching splits it. on_batch(size, seconds), if set, is called
    after each batch (metrics). Start it inside the running event loop (start), stop it on shutdown.
    """

    def __init__(self, work: Callable[[list], list], *, name: str, max_batch: int = 64, max_wait_ms: float = 5.0,
                 max_queue: int = 1024, timeout: Optional[float] = None):
        self.work, self.name, self.timeout = work, name, timeout
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        self.stats = BatchStats()
        self.on_batch: Optional[Callable[[int, float], None]] = None
        self.queued = 0  # items waiting, not yet in a running batch
        self._pending: deque = deque()
        self._wakeup: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._executor: Optional[ThreadPoolExecutor] = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f'ruclip-serve-{self.name}')
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f'ruclip-serve-{self.name}')

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for request in self._pending:
            if not request.future.done():
                request.future.set_exception(QueueFull(f'the {self.name} batcher stopped'))
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: Sequence) -> list:
        """The results of work for `items`, in order, computed in a batch with other requests' items.
        QueueFull when max_queue items are waiting already; TimeoutError past `timeout` seconds;
        work's exception, if it raised."""
        if self._task is None:
            raise RuntimeError(f'the {self.name} batcher is not started')
        if self.queued and self.queued + len(items) > self.max_queue:
            raise QueueFull(f'{self.queued} {self.name} items are waiting (the queue holds {self.max_queue})')
        loop = asyncio.get_running_loop()
        request = _Request(items, loop.create_future(), loop.time())
        self._pending.append(request)
        self.queued += len(items)
        self._wakeup.set()
        return await asyncio.wait_for(request.future, self.timeout)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._pending[0].arrived + self.max_wait
            while self.queued < self.max_batch and (remaining := deadline - loop.time()) > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            if batch:
                await self._run_batch(loop, batch)

    def _take(self) -> List[_Request]:
        """The oldest waiting requests, up to max_batch items (at least one request); cancelled ones dropped."""
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0].items) <= self.max_batch):
            request = self._pending.popleft()
            self.queued -= len(request.items)
            if not request.future.done():  # a client gone away cancelled it
                batch.append(request)
                size += len(request.items)
        return batch

    async def _run_batch(self, loop, batch: List[_Request]) -> None:
        items = [item for request in batch for item in request.items]
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.work, items)
        except Exception as error:  # noqa: BLE001 - handed to each request, which answers it
            logger.exception('%s batch of %d items failed', self.name, len(items))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error)
            return
        seconds = time.perf_counter() - started
        self.stats.record(len(items))
        if self.on_batch is not None:
            self.on_batch(len(items), seconds)
        start = 0
        for request in batch:
            if not request.future.done():
                request.future.set_result(results[start:start + len(request.items)])
            start += len(request.items)
