"""Stage 2: pooled LM features of every node text, cached on disk."""

from talk_cli.lazy import lazy_exports

EXPORTS = {
    "default_model_path": "talk_cli.encode.lm",
    "EncodeResult": "talk_cli.encode.encoder",
    "EncodeSettings": "talk_cli.encode.settings",
    "encode_tag": "talk_cli.encode.encoder",
    "encode_texts": "talk_cli.encode.encoder",
    "LanguageModel": "talk_cli.encode.lm",
    "LMIdentity": "talk_cli.encode.lm",
    "encode_embeddings": "talk_cli.encode.lm",
    "load_language_model": "talk_cli.encode.lm",
    "mean_pool": "talk_cli.encode.lm",
    "pool": "talk_cli.encode.lm",
}
__all__ = list(EXPORTS)
__getattr__ = lazy_exports(__name__, EXPORTS)
