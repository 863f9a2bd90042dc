"""SEER: self-evolving evaluator and reprompter for unified multimodal models (arXiv 2601.20305)."""

__version__ = "0.1.0"
