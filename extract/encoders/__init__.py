"""Encoder families, one module each; importing this package fills `ENCODERS`."""
from extract.encoders.base import ENCODERS, EncodeOutput, Encoder, create_encoder, list_encoders

# Each family module registers itself with @register_encoder on import.
from extract.encoders import clip, torchvision_cnn, hf_text, offline, tfidf  # noqa: E402,F401
from extract.encoders import scratch_image, scratch_text  # noqa: E402,F401  (cnn, lstm: trained from scratch)
from extract.encoders import kg, multihot  # noqa: E402,F401  (metadata)

__all__ = ["ENCODERS", "EncodeOutput", "Encoder", "create_encoder", "list_encoders"]
