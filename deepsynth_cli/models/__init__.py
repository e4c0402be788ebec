"""DeepSeek-OCR-2 for `deepsynth train`: presets (which model, how it sees a page, the prompt) and batching.

`preset_config` is pydantic only (the YAML schema of configs/train/, cheap to import anywhere); `presets` and
`batching` import torch and transformers (seconds): only the services that train, evaluate or serve import
them, never the CLI at start-up.
"""
