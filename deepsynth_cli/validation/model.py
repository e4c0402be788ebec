"""Model checks: it loads (the config only when the weights are large), its processor inserts as many image
tokens per page as the vision tower emits, and its tokenizer has the special tokens training needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsynth_cli.validation import Check, failed, passed, skipped, warned

# Above this, loading the weights is not worth a validation run: the config and processor are checked instead.
MAX_WEIGHTS_BYTES = 2 * 2**30


def _weights_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.safetensors"))


def load_parts(spec: str) -> tuple[Any, Any, Any, str]:
    """(config, processor, preset fields or None, how it was loaded). Raises what the loaders raise."""
    from deepsynth_cli.models.preset_config import PRESETS, TINY

    if spec == TINY:
        from deepsynth_cli.models.presets import build_tiny

        model, processor = build_tiny(PRESETS[TINY].image_size or 384)
        return model.config, processor, PRESETS[TINY], "built the tiny preset"
    from transformers import AutoConfig, AutoProcessor

    from deepsynth_cli.models.presets import PresetInfo, resolve_preset

    preset = resolve_preset(spec)
    source = preset.model
    config = AutoConfig.from_pretrained(source)
    processor = AutoProcessor.from_pretrained(source)  # type: ignore[no-untyped-call]
    saved = PresetInfo.read(Path(source)) if Path(source).is_dir() else None
    how = "loaded the config and processor"
    if Path(source).is_dir() and _weights_bytes(Path(source)) <= MAX_WEIGHTS_BYTES:
        from transformers import AutoModelForImageTextToText

        AutoModelForImageTextToText.from_pretrained(source)
        how = "loaded the weights"
    image_size = preset.image_size or (saved.image_size if saved else None)
    return config, processor, image_size, how


def check_load(spec: str) -> tuple[Check, tuple[Any, Any, int] | None]:
    name = f"model:{spec}:load"
    try:
        config, processor, preset_or_size, how = load_parts(spec)
    except Exception as error:  # a missing file, a wrong model type, no network: all mean "cannot load"
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return failed(name, "critical", f"cannot load {spec}: {message}", "check the preset, folder or Hub id"), None
    if getattr(config, "model_type", None) != "deepseek_ocr2":
        return failed(
            name, "critical", f"{spec} is a {getattr(config, 'model_type', '?')!r} model, not DeepSeek-OCR-2",
            "use deepseek-community/DeepSeek-OCR-2 or a deepsynth checkpoint",
        ), None  # fmt: skip
    image_size = getattr(preset_or_size, "image_size", preset_or_size) or int(processor.image_processor.size["height"])
    return passed(name, "critical", f"{how} ({spec})"), (config, processor, int(image_size))


def check_image_tokens(spec: str, processor: Any, image_size: int, page_tokens: list[int]) -> list[Check]:
    """The processor's `<image>` expansion per page equals what the vision tower emits at this view size; and the
    datasets' recorded vision tokens per page (their compression statistics) use the same count."""
    from deepsynth_cli.models.preset_config import vision_queries
    from deepsynth_cli.models.presets import _processor_count

    name = f"model:{spec}:image-tokens"
    counted, emitted = _processor_count(processor, image_size), vision_queries(image_size)
    checks = []
    if counted != emitted:
        checks.append(
            failed(
                name,
                "critical",
                f"the processor inserts {counted} image tokens for a {image_size}px page, "
                f"the vision tower emits {emitted}",
                "use the processor saved with this model (patch_size, "
                "downsample_ratio), or image_size 768/1024 with the real processor",
            )
        )
    else:
        checks.append(passed(name, "critical", f"{counted} image tokens + 1 separator per {image_size}px page"))
    if page_tokens:
        geometry = f"model:{spec}:dataset-geometry"
        differing = sorted({tokens for tokens in page_tokens if tokens != emitted + 1})
        if differing:
            checks.append(
                warned(
                    geometry,
                    "medium",
                    f"datasets count {differing} vision tokens per page, the model uses {emitted + 1}",
                    "their compression statistics assume another page geometry: match "
                    "render.page_size to the model's image_size",
                )
            )
        else:
            checks.append(passed(geometry, "medium", f"datasets count {emitted + 1} vision tokens per page"))
    return checks


def check_special_tokens(spec: str, config: Any, processor: Any) -> Check:
    """`<image>` (with the id the model expects), EOS and padding: without them labels and batches are wrong."""
    name = f"model:{spec}:special-tokens"
    tokenizer = processor.tokenizer
    problems = []
    image_token = getattr(processor, "image_token", None) or "<image>"
    image_id = tokenizer.convert_tokens_to_ids(image_token)
    if image_id is None or image_id == tokenizer.unk_token_id:
        problems.append(f"{image_token} is not in the vocabulary")
    elif getattr(config, "image_token_id", image_id) != image_id:
        problems.append(f"{image_token} is id {image_id}, the model expects {config.image_token_id}")
    for role in ("eos", "pad"):
        if getattr(tokenizer, f"{role}_token_id", None) is None:
            problems.append(f"no {role} token")
    if problems:
        return failed(name, "high", "; ".join(problems), "save the tokenizer that came with the model")
    return passed(name, "high", f"{image_token} id {image_id}, eos and pad present")


def model_checks(spec: str | None, page_tokens: list[int]) -> list[Check]:
    if spec is None:
        return [skipped("model", "no --model given")]
    load, parts = check_load(spec)
    if parts is None:
        return [load]
    config, processor, image_size = parts
    return [
        load,
        *check_image_tokens(spec, processor, image_size, page_tokens),
        check_special_tokens(spec, config, processor),
    ]
