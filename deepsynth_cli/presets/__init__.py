"""The training presets, one YAML per preset (`tiny.yaml`, `deepseek-ocr-2.yaml`): package data, so a wheel
trains with the same settings as a checkout. `configs/train/*.yaml` are symbolic links to these files."""
