"""`deepsynth serve`: an HTTP API (FastAPI) in front of one Summarizer, with micro-batching, limits and metrics.

Importing this package is cheap; `create_app` lives in `serving.app` and needs the `serve` extra.
"""
