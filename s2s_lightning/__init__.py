"""s2s-lightning: ablation studies of LSTM sequence-to-sequence models, reported the way papers do."""

__version__ = "0.1.0"
