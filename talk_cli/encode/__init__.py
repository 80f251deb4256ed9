"""Stage 2: pooled LM features of every node text, cached on disk."""

from talk_cli.encode.encoder import EncodeResult, EncodeSettings, encode_tag, encode_texts
from talk_cli.encode.lm import LanguageModel, LMIdentity, encode_embeddings, load_language_model, mean_pool, pool

__all__ = [
    "EncodeResult",
    "EncodeSettings",
    "LMIdentity",
    "LanguageModel",
    "encode_embeddings",
    "encode_tag",
    "encode_texts",
    "load_language_model",
    "mean_pool",
    "pool",
]
