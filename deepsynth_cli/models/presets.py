"""Model presets: which DeepSeek-OCR-2 to load, how its processor shows it a page, and the summarisation prompt.

`load_model(spec)` accepts:

    "tiny"            a 0.6 M-parameter DeepSeek-OCR-2 built from a config in code with seeded random weights, a
                      2k byte-level BPE trained on the texts the `aclsum` package ships, and a 384 px processor.
                      Builds offline in well under a second and runs the real model's code path (unit tests, CI).
    "deepseek-ocr-2"  the converted real model `deepseek-community/DeepSeek-OCR-2` (3.4 B parameters, 6.3 GiB in
                      bf16), loaded with the native transformers classes: no `trust_remote_code`.
    a folder          what `save_model` / `save_pretrained` wrote (our checkpoints); a `deepsynth_preset.json`
                      beside the weights restores the preset fields (image size, instruction, tiles).
    a Hub id          any DeepSeek-OCR-2 checkpoint in the transformers format.

The prompt for a document of N pages is N image placeholders and then the preset's instruction, in the style of
the real model's own prompts (`<image>\\nFree OCR.`):

    <image><image><image>\\nSummarize this document.

The processor expands each `<image>` into the vision tokens of that page; the summary follows the instruction
directly and ends with EOS (see `batching.py`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeAlias, cast

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    DeepseekOcr2Config,
    DeepseekOcr2ForConditionalGeneration,
    DeepseekOcr2ImageProcessorPil,
    DeepseekOcr2Processor,
    PreTrainedTokenizerFast,
)

from deepsynth_cli.data.sources import aclsum_data_dir
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.models.preset_config import (
    DEFAULT_INSTRUCTION,
    IMAGE_TOKEN,
    PRESET_FILE,
    PRESETS,
    REAL_MODEL_ID,
    TINY,
    TINY_IMAGE_SIZE,
    TINY_SPECIAL_TOKENS,
    TINY_VOCAB_SIZE,
    DType,
    ModelPreset,
    vision_queries,
)

_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

Model: TypeAlias = DeepseekOcr2ForConditionalGeneration
Processor: TypeAlias = DeepseekOcr2Processor


@dataclass(frozen=True)
class PresetInfo:
    """How a loaded model is used: the prompt, the page geometry and what a page costs in tokens."""

    name: str  # the spec as given: a preset name, a folder or a Hub id
    source: str  # where the weights came from: "random init (seed 0)", a Hub id or a folder
    image_size: int  # side of the global view each page is resized (and grey-padded) to
    tile_size: int  # side of a local tile; equals image_size when tiles are off
    crop_to_patches: bool
    vision_tokens_per_image: int  # global view + view separator: the whole cost of a page without tiles
    vision_tokens_per_tile: int  # added per local tile when crop_to_patches is on
    instruction: str
    image_token: str = IMAGE_TOKEN

    def prompt(self, num_pages: int) -> str:
        """One image placeholder per page, then the instruction."""
        return self.image_token * num_pages + self.instruction

    def image_kwargs(self) -> dict[str, Any]:
        """Processor keywords for every call: DeepseekOcr2Processor's own defaults (tiles on, 2 to 6 of them)
        override the image processor's saved settings, so they are passed each time."""
        return {
            "crop_to_patches": self.crop_to_patches,
            "size": {"height": self.image_size, "width": self.image_size},
            "tile_size": self.tile_size,
        }

    def save(self, folder: Path) -> Path:
        path = Path(folder) / PRESET_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> PresetInfo | None:
        path = Path(folder) / PRESET_FILE
        if not path.is_file():
            return None
        values = json.loads(path.read_text(encoding="utf-8"))
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


# ---------------------------------------------------------------------------------------------------------------
# Token geometry


def _processor_count(processor: Processor, view_size: int) -> int:
    # What DeepseekOcr2Processor inserts per view; it agrees with the model only for a suitable patch_size.
    return int(math.ceil(view_size / processor.patch_size / processor.downsample_ratio) ** 2)


def _check_geometry(processor: Processor, info: PresetInfo) -> None:
    views = [info.image_size] + ([info.tile_size] if info.crop_to_patches else [])
    for view in views:
        counted, emitted = _processor_count(processor, view), vision_queries(view)
        if counted != emitted:
            raise ConfigError(
                f"the processor inserts {counted} image tokens for a {view} px view but the model emits {emitted}",
                hint="use image_size 768 or 1024 with the real processor (or, for a small model, a size divisible "
                "by 12 up to 768 with patch_size = size // 12 and downsample_ratio = 1)",
            )


# ---------------------------------------------------------------------------------------------------------------
# The tiny preset


def tiny_corpus() -> list[str]:
    """What the tiny tokenizer learns from: summaries and sentences of ACLSum's training split as shipped in the
    `aclsum` package (about 0.6 MB), in file order so that training is deterministic."""
    texts: list[str] = []
    for line in (aclsum_data_dir() / "train.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        paper = json.loads(line)
        texts.extend(str(part) for part in (paper.get("summary") or {}).values())
        texts.extend(" ".join(sentences) for sentences in (paper.get("sentences") or {}).values())
    return texts


def build_tiny_tokenizer(
    corpus: Iterable[str] | None = None, vocab_size: int = TINY_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """A byte-level BPE (any UTF-8 text encodes, nothing maps to unknown) that prepends BOS like DeepSeek's."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(tiny_corpus() if corpus is None else corpus, trainer=trainer)
    bos = TINY_SPECIAL_TOKENS[0]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )
    wrapped: PreTrainedTokenizerFast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},  # the processor reads tokenizer.image_token
        model_max_length=8192,
    )
    return wrapped


def tiny_processor(tokenizer: PreTrainedTokenizerFast, image_size: int = TINY_IMAGE_SIZE) -> Processor:
    """A processor whose token count agrees with the model at `image_size` (divisible by 12, at most 768 px).

    The processor counts ceil(size / patch_size / downsample_ratio)^2 tokens per view, the model emits 144 for
    any view up to 768 px: patch_size = size // 12 with downsample_ratio 1 makes both 144.
    """
    if image_size % 12 or not 96 <= image_size <= 768:
        raise ConfigError(
            f"the tiny preset needs an image_size divisible by 12 between 96 and 768, not {image_size}",
            hint="use 384 (the default) or another multiple of 12",
        )
    image_processor = DeepseekOcr2ImageProcessorPil(
        size={"height": image_size, "width": image_size}, tile_size=image_size, crop_to_patches=False
    )
    processor: Processor = DeepseekOcr2Processor(  # type: ignore[no-untyped-call]
        image_processor=image_processor, tokenizer=tokenizer, patch_size=image_size // 12, downsample_ratio=1
    )
    return processor


def tiny_config(tokenizer: PreTrainedTokenizerFast, image_size: int = TINY_IMAGE_SIZE) -> DeepseekOcr2Config:
    """DeepSeek-OCR-2's architecture at toy width: SAM 32 x 2 layers, encoder 64 x 2, MoE decoder 64 x 2.

    Each non-obvious value is one the model needs to run or to see the image at all:
    - `initializer_range=0.02` on SAM: its default 1e-10 gives a model that ignores the pixels entirely
      (identical logits for any image);
    - `downsample_channels[-1]` equals the encoder's hidden size (SAM's output is fed to it as is);
    - `mlp_layer_types` and `num_experts_per_tok` must be set (the text config has no usable defaults);
    - SAM's `image_size` is the view size, so its position embedding is used without interpolation.
    """
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return DeepseekOcr2Config(
        vision_config={
            "sam_config": {
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": image_size,
                "output_channels": 32,
                "global_attn_indexes": [1],
                "downsample_channels": [48, 64],
                "initializer_range": 0.02,
            },
            "encoder_config": {
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "intermediate_size": 128,
                "vocab_size": 1,  # the encoder embeds no tokens: it reads SAM features and learned queries
                "max_position_embeddings": 512,
            },
        },
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "n_routed_experts": 4,
            "n_shared_experts": 1,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "mlp_layer_types": ["dense", "sparse"],
            "max_position_embeddings": 4096,
            **special,
        },
        image_token_id=_token_id(tokenizer, IMAGE_TOKEN),
        **special,
    )


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(token_id, int), token
    return token_id


def build_tiny(image_size: int = TINY_IMAGE_SIZE, *, seed: int = 0) -> tuple[Model, Processor]:
    """The tiny model (float32, eval mode) and its processor. Same seed, same weights; the caller's RNG state is
    left as it was."""
    tokenizer = build_tiny_tokenizer()
    processor = tiny_processor(tokenizer, image_size)
    config = tiny_config(tokenizer, image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DeepseekOcr2ForConditionalGeneration(config)
    generation = model.generation_config
    generation.bos_token_id = tokenizer.bos_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    model.eval()  # type: ignore[no-untyped-call]
    return model, processor


# ---------------------------------------------------------------------------------------------------------------
# Loading


def resolve_preset(spec: str | ModelPreset) -> ModelPreset:
    """A preset name, a folder or a Hub id as a `ModelPreset`; anything else is a ConfigError naming the presets."""
    if isinstance(spec, ModelPreset):
        return spec
    if spec in PRESETS:
        return PRESETS[spec]
    if Path(spec).is_dir() or _HUB_ID.match(spec):
        return ModelPreset(model=spec)
    raise ConfigError(
        f"unknown model {spec!r}: not a preset, an existing folder or a Hub id",
        hint=f"use one of {', '.join(PRESETS)}, a checkpoint folder, or owner/name",
    )


def load_model(
    spec: str | ModelPreset = TINY,
    *,
    dtype: DType | torch.dtype | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> tuple[Model, Processor, PresetInfo]:
    """Build or load a DeepSeek-OCR-2, its processor and how to prompt it; the model is in eval mode on `device`.

    `dtype` defaults to the preset's, else float32 for tiny and the checkpoint's own for the others; `seed` only
    matters for the tiny preset (its random weights).
    """
    preset = resolve_preset(spec)
    name = spec if isinstance(spec, str) else preset.model
    chosen = dtype or preset.dtype
    torch_dtype = chosen if isinstance(chosen, torch.dtype) or chosen is None else _DTYPES[chosen]
    saved: PresetInfo | None = None
    if preset.model == TINY:
        model, processor = build_tiny(preset.image_size or TINY_IMAGE_SIZE, seed=seed)
        source = f"random init (seed {seed})"
        torch_dtype = torch_dtype or torch.float32
    else:
        model, processor = _load_pretrained(preset.model, torch_dtype)
        source = preset.model
        if Path(preset.model).is_dir():
            saved = PresetInfo.read(Path(preset.model))
    info = _resolve_info(name, source, preset, saved, processor)
    _check_geometry(processor, info)
    if preset.model == TINY:
        model.to(device=device, dtype=torch_dtype)  # type: ignore[call-arg]
    else:
        # Only the device: from_pretrained set the dtype and kept the MoE router weights in float32.
        model.to(device=device)  # type: ignore[call-arg]
    return model, processor, info


def save_model(model: Model, processor: Processor, info: PresetInfo, folder: Path) -> Path:
    """Weights, processor (tokenizer included) and preset fields in one folder that `load_model` reads back."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    info.save(folder)
    return folder


def _load_pretrained(source: str, dtype: torch.dtype | None) -> tuple[Model, Processor]:
    where = "folder" if Path(source).is_dir() else "Hub model"
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the {where} {source}: {exc}".splitlines()[0],
            hint="check the id or path; a Hub model needs network access (and HF_TOKEN for a private one)",
        ) from exc
    if config.model_type != "deepseek_ocr2":
        raise ConfigError(
            f"{source} is a {config.model_type!r} model, not DeepSeek-OCR-2 in the transformers format",
            hint=f"use {REAL_MODEL_ID} (the deepseek-ai repos need trust_remote_code and transformers 4.46)",
        )
    processor = AutoProcessor.from_pretrained(source)  # type: ignore[no-untyped-call]
    # "auto": the dtype the checkpoint was saved in (bf16 for the real model), not a silent upcast to float32.
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype or "auto")
    return cast(Model, model), cast(Processor, processor)


def _resolve_info(
    name: str, source: str, preset: ModelPreset, saved: PresetInfo | None, processor: Processor
) -> PresetInfo:
    # Precedence: the preset's explicit fields > what the checkpoint was trained with > the processor / defaults.
    image_size = preset.image_size or (saved.image_size if saved else int(processor.image_processor.size["height"]))
    crop = preset.crop_to_patches if preset.crop_to_patches is not None else bool(saved and saved.crop_to_patches)
    instruction = preset.instruction
    if instruction is None:
        instruction = saved.instruction if saved else DEFAULT_INSTRUCTION
    # Without tiles the processor resizes the global view to tile_size but counts tokens from size: keep them equal.
    tile_size = int(processor.image_processor.tile_size) if crop else image_size
    return PresetInfo(
        name=name,
        source=source,
        image_size=image_size,
        tile_size=tile_size,
        crop_to_patches=crop,
        vision_tokens_per_image=vision_queries(image_size) + 1,
        vision_tokens_per_tile=vision_queries(tile_size),
        instruction=instruction,
        image_token=str(processor.image_token),
    )
