"""Running a trained model: render text the way it was trained on, and generate summaries (eval and serve)."""
