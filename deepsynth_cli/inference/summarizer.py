"""One loaded model that turns pages (or text, rendered as in training) into summaries: used by `eval` and
`serve` alike, so both decode and count exactly the same way.

    summarizer = Summarizer.load("runs/fr")                    # a folder `deepsynth train` wrote, a preset, a Hub id
    document = summarizer.render("Le texte ...", "fr")        # the renderer settings the model was trained with
    [summary] = summarizer.summarize([document.pages], GenerationOptions(num_beams=4))

Page images are encoded once per batch and handed to `generate` as `mm_encoder_outputs`, which transformers
repeats per beam by whole groups of pages ([A, B] -> [A, B, A, B]); repeating raw `pixel_values` page by page
([A, A, B, B]) would show the beams of a multi-page document the wrong pages. The transformers versions we support
pre-encode `pixel_values` the same way on their own; passing the features makes it independent of that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer, RenderedDocument
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.models.batching import Batcher, pixel_dtype
from deepsynth_cli.models.preset_config import PRESETS, DType
from deepsynth_cli.models.presets import Model, PresetInfo, Processor, load_model

RENDER_FILE = "deepsynth_render.json"
"""Written beside the weights by `deepsynth train`: how the pages it learned from were rendered."""


LIMITS_FILE = "deepsynth_limits.json"
"""Written beside the weights by `deepsynth train`: the page limit it trained with (`batching.max_pages`) and the
generation limit its training summaries call for (`max_new_tokens`: their 99th-percentile token length, EOS
included, within `batching.max_target_tokens`). `eval` and `serve` default to both."""


@dataclass(frozen=True)
class ModelLimits:
    max_pages: int
    max_new_tokens: int


def save_model_limits(folder: Path, limits: ModelLimits) -> Path:
    path = Path(folder) / LIMITS_FILE
    path.write_text(json.dumps(asdict(limits), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_model_limits(source: str | Path) -> ModelLimits | None:
    """The limits saved with a model folder or a Hub model; None when absent."""
    path = _model_file(source, LIMITS_FILE)
    if path is None:
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        return ModelLimits(max_pages=int(values["max_pages"]), max_new_tokens=int(values["max_new_tokens"]))
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is not a valid limits file: {error}", hint="delete or fix the file") from error


def _model_file(source: str | Path, name: str) -> Path | None:
    """One small file of a model folder or Hub model trained by deepsynth; None when absent (or a preset)."""
    folder = Path(source)
    if str(source) in PRESETS:  # presets are base models: they were not trained on rendered pages by us
        return None
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(str(source), name))
    except Exception:  # not on the Hub, offline, or a model not trained by deepsynth
        return None


def save_render_config(folder: Path, render: RenderConfig) -> Path:
    path = Path(folder) / RENDER_FILE
    path.write_text(json.dumps(render.model_dump(mode="json"), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_render_config(source: str | Path) -> RenderConfig | None:
    """The render settings saved with a model folder, or with a Hub model (one small file); None when absent."""
    path = _model_file(source, RENDER_FILE)
    if path is None:
        return None
    try:
        return RenderConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as error:
        raise ConfigError(f"{path} is not a valid render config: {error}", hint="delete or fix the file") from error


def pick_device(device: str = "auto") -> torch.device:
    """`auto`: the GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Summary:
    """One document's summary and what it cost."""

    text: str
    pages: int  # pages shown to the model
    pages_dropped: int  # pages beyond the model's page limit
    vision_tokens: int  # image positions in the prompt: what the pages cost the decoder
    new_tokens: int  # tokens generated, EOS excluded
    finished: bool  # ended with EOS within max_new_tokens
    logprob: float | None = None  # mean log-probability per generated token (EOS included when reached)
    error: str | None = None  # the row failed; text is empty
    prompt_tokens: int = 0  # the whole prompt: vision tokens and the instruction


TokenListener = Callable[[int], None]
"""Called from the model thread with each new token id of one document, as `generate` makes it (EOS excluded)."""


class _RowStreamer:
    """transformers' streamer protocol (`put` per step, `end`) over a batch: row i's new tokens go to
    `listeners[i]` (None: that row does not stream) until its EOS. The first `put` is the prompt: skipped."""

    def __init__(self, listeners: Sequence[TokenListener | None], eos: int) -> None:
        self.listeners, self.eos = list(listeners), eos
        self.finished = [listener is None for listener in self.listeners]
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        steps = value.reshape(len(self.listeners), -1).tolist()  # (batch,) per step, or (batch, k) at once
        for row, tokens in enumerate(steps):
            listener = self.listeners[row]
            for token in tokens:
                if self.finished[row] or listener is None:
                    break
                if token == self.eos:
                    self.finished[row] = True
                else:
                    listener(int(token))

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class PreparedPages:
    """A document's pages already through the processor (`Summarizer.prepare`). `summarize` takes it wherever it
    takes a list of pages, and skips that step: a server prepares documents in request threads while the model
    thread only runs the model."""

    page_count: int
    encoded: Any  # models.batching._Encoded: prompt ids and page tensors

    def __len__(self) -> int:
        return self.page_count


@dataclass
class Summarizer:
    """A model, its processor and how to prompt it, ready to summarise on one device."""

    model: Model
    processor: Processor
    info: PresetInfo
    render_config: RenderConfig
    render_source: str  # "checkpoint" when the settings were saved with the model, else "default"
    device: torch.device
    max_pages: int = 4
    max_new_tokens: int | None = None  # when the options give none: the model's (LIMITS_FILE), else the default
    _renderer: PageRenderer | None = field(default=None, init=False, repr=False)
    _batcher: Batcher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._batcher = Batcher(self.processor, self.info, max_pages=self.max_pages)

    @classmethod
    def load(
        cls,
        spec: str,
        *,
        device: str = "auto",
        dtype: DType | None = None,
        max_pages: int | None = None,
    ) -> Summarizer:
        """Load a preset, a model folder or a Hub id for inference (eval mode, no gradients)."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on stderr: the CLI owns the console
        where = pick_device(device)
        if dtype is None and where.type == "cuda" and torch.cuda.is_bf16_supported():
            dtype = "bfloat16"
        model, processor, info = load_model(spec, dtype=dtype, device=where)
        model.eval()
        saved = read_render_config(spec)
        render = saved or RenderConfig()
        limits = read_model_limits(spec)
        pages = max_pages or (limits.max_pages if limits else render.max_pages)  # trained limit, else the render's
        length = limits.max_new_tokens if limits else None
        return cls(model, processor, info, render, "checkpoint" if saved else "default", where, pages, length)

    @property
    def model_id(self) -> str:
        return self.info.name

    @property
    def renderer(self) -> PageRenderer:
        if self._renderer is None:
            self._renderer = PageRenderer(self.render_config)
        return self._renderer

    def render(self, text: str, language: str = "und") -> RenderedDocument:
        """Text -> pages with the renderer settings the model was trained on."""
        return self.renderer.render(text, language)

    def prepare(self, pages: Sequence[Any]) -> PreparedPages:
        """Run the processor on one document's pages now (thread-safe; no model call), for `summarize` later."""
        return PreparedPages(len(pages), self._batcher.encode_pages(pages))

    def summarize(
        self,
        documents: Sequence[Sequence[Any]],
        options: GenerationOptions | None = None,
        on_tokens: Sequence[TokenListener | None] | None = None,
    ) -> list[Summary]:
        """One summary per document (a list of page images in any form a shard row holds them). `on_tokens`: per
        document, a listener that hears each token as it is generated (greedy or sampling; not with beams).

        A batch that fails is retried row by row, so one bad document costs its own row only: its Summary
        carries the error and an empty text (a retried row streams nothing more: its summary has the text).
        """
        options = options or GenerationOptions()
        if options.max_new_tokens is None and self.max_new_tokens is not None:
            options = options.model_copy(update={"max_new_tokens": self.max_new_tokens})
        if not documents:
            return []
        try:
            return self._generate(documents, options, on_tokens)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:
            if len(documents) == 1:  # nothing to retry: the row is the batch
                return [self._failed(documents[0], error)]
        results: list[Summary] = []
        for document in documents:
            try:
                results.extend(self._generate([document], options))
            except torch.OutOfMemoryError:
                raise
            except Exception as error:  # recorded on its row; the others go on
                results.append(self._failed(document, error))
        return results

    def _failed(self, document: Sequence[Any], error: Exception) -> Summary:
        message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        return Summary("", min(len(document), self.max_pages), 0, 0, 0, False, None, message)

    @torch.inference_mode()
    def _generate(
        self,
        documents: Sequence[Sequence[Any]],
        options: GenerationOptions,
        on_tokens: Sequence[TokenListener | None] | None = None,
    ) -> list[Summary]:
        if any(isinstance(pages, PreparedPages) for pages in documents):
            encoded = [
                pages.encoded if isinstance(pages, PreparedPages) else self._batcher.encode_pages(pages)
                for pages in documents
            ]
            batch = self._batcher.generation_inputs_encoded(encoded)
        else:
            rows = [{"pages": list(pages), "source_id": str(index)} for index, pages in enumerate(documents)]
            batch = self._batcher.generation_inputs(rows)
        inputs = batch.to(self.device, dtype=pixel_dtype(self.model)).inputs
        input_ids = inputs["input_ids"]
        image = self.model.get_image_features(
            pixel_values=inputs["pixel_values"],
            pixel_values_local=inputs.get("pixel_values_local"),
            num_local_patches=inputs.get("num_local_patches"),
            return_dict=True,
        )
        tokenizer = self.processor.tokenizer
        eos = int(tokenizer.eos_token_id)
        pad = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else eos
        if options.do_sample and options.seed is not None:
            torch.manual_seed(options.seed)
        streamer = _RowStreamer(on_tokens, eos) if on_tokens and any(on_tokens) and options.num_beams == 1 else None
        out = self.model.generate(
            streamer=streamer,
            input_ids=input_ids,
            attention_mask=inputs["attention_mask"],
            mm_encoder_outputs={"image": image},
            eos_token_id=eos,
            pad_token_id=pad,
            return_dict_in_generate=True,
            output_scores=True,
            **options.generate_kwargs(),
        )
        steps = self.model.compute_transition_scores(
            out.sequences, out.scores, getattr(out, "beam_indices", None), normalize_logits=True
        )
        new = out.sequences[:, input_ids.shape[1] :].tolist()
        image_id = int(self.processor.image_token_id)
        vision = (input_ids == image_id).sum(dim=1).tolist()
        prompt = inputs["attention_mask"].sum(dim=1).tolist()
        summaries = []
        for index, (pages, ids) in enumerate(zip(documents, new, strict=True)):
            finished = eos in ids
            kept = ids[: ids.index(eos)] if finished else [token for token in ids if token != pad]
            shown = min(len(pages), self.max_pages)
            text = tokenizer.decode(kept, skip_special_tokens=True).strip()
            # Mean log-probability of the tokens kept (and the EOS): how sure the model was, comparable across rows.
            scored = steps[index, : len(kept) + int(finished)].float()
            logprob = float(scored[torch.isfinite(scored)].mean()) if scored.numel() else None
            summaries.append(
                Summary(
                    text, shown, len(pages) - shown, int(vision[index]), len(kept), finished, logprob,
                    prompt_tokens=int(prompt[index]),
                )
            )  # fmt: skip
        return summaries


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """(result, seconds) of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started
