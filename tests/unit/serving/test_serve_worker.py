"""The micro-batcher on the real tiny model: identical requests stay separate jobs, batches respect the size limit,
stopping drains cleanly."""

from __future__ import annotations

import asyncio

from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import Summarizer
from deepsynth_cli.serving.config import BatchingConfig
from deepsynth_cli.serving.worker import MicroBatcher


def test_same_document_twice_is_two_jobs_and_batches_are_bounded(summarizer: Summarizer) -> None:
    prepared = summarizer.prepare(summarizer.render("The same memo, sent twice.", "en").pages)
    sizes: list[int] = []
    batcher = MicroBatcher(summarizer.summarize, BatchingConfig(max_batch_size=3, max_wait_ms=200))
    batcher._observer.on_batch = lambda size, seconds: sizes.append(size)
    batcher.start()
    try:

        async def burst() -> list[object]:
            options = GenerationOptions(max_new_tokens=3)
            return list(await asyncio.gather(*(batcher.run([prepared], options, 60) for _ in range(5))))

        results = asyncio.run(burst())
    finally:
        batcher.stop()
    assert len(results) == 5 and len({id(result) for result in results}) == 5
    assert sum(sizes) == 5 and max(sizes) == 3  # grouped, never beyond max_batch_size
    assert batcher.depth == 0 and not batcher.alive
