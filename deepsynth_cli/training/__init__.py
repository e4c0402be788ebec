"""`deepsynth train`: the job config (`config`, torch-free), the written-out loop (`loop`) and its helpers
(`optim`, `checkpoint`, `data`, `trainable`, `events`)."""
