"""Encoder families, one module each; importing this package fills `ENCODERS`."""
from extract.encoders.base import ENCODERS, EncodeOutput, Encoder, create_encoder, list_encoders

# Each family module registers itself with @register_encoder on import.
from extract.encoders import clip, torchvision_cnn, hf_text, offline, tfidf  # noqa: E402,F401

__all__ = ["ENCODERS", "EncodeOutput", "Encoder", "create_encoder", "list_encoders"]
