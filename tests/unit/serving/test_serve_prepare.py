"""Pages prepared in a request thread (`Summarizer.prepare`) give exactly what the same pages give unprepared."""

from __future__ import annotations

import threading

from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import PreparedPages, Summarizer


def test_prepared_pages_summarise_like_raw_pages(summarizer: Summarizer) -> None:
    short = summarizer.render("A short note about trams.", "en").pages
    long = summarizer.render(" ".join(f"word{k % 71} in a long report" for k in range(900)), "en").pages
    assert len(long) == 3  # the render's budget; max_pages 3 shows them all
    over = long + short  # four pages: one beyond the model's limit
    options = GenerationOptions(max_new_tokens=5)
    raw = summarizer.summarize([short, long, over], options)
    prepared = summarizer.summarize([summarizer.prepare(pages) for pages in (short, long, over)], options)
    mixed = summarizer.summarize([short, summarizer.prepare(long), over], options)
    assert [item.text for item in prepared] == [item.text for item in raw] == [item.text for item in mixed]
    assert [(item.pages, item.pages_dropped, item.vision_tokens) for item in prepared] == [
        (item.pages, item.pages_dropped, item.vision_tokens) for item in raw
    ]
    assert (prepared[2].pages, prepared[2].pages_dropped) == (3, 1)


def test_prepare_from_several_threads(summarizer: Summarizer) -> None:
    pages = [summarizer.render(f"Memo {index}: the budget grew by {index} percent.", "en").pages for index in range(6)]
    out: list[PreparedPages | None] = [None] * len(pages)

    def work(index: int) -> None:
        out[index] = summarizer.prepare(pages[index])

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(pages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    options = GenerationOptions(max_new_tokens=4)
    assert [s.text for s in summarizer.summarize(out, options)] == [
        s.text for s in summarizer.summarize(pages, options)
    ]
