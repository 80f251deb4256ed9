"""End-to-end with the base-size LM all-mpnet-base-v2, where `make mpnet` has put it (skipped,
with the reason, when it is absent: fetching it takes minutes and 440 MB)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import platformdirs
import pytest
import torch
from conftest import REPO

# The suite gives every test its own cache: the model is looked for where `make mpnet` puts it.
FOLDER = Path(os.environ.get("TALK_MPNET_DIR") or Path(platformdirs.user_cache_dir("talk_cli")) / "models" / "all-mpnet-base-v2")

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not (FOLDER / "model.safetensors").is_file(), reason=f"all-mpnet-base-v2 is not at {FOLDER} (make mpnet)")]


def test_mpnet_is_the_upstream_model_named_by_hub_id_and_reads_texts_sensibly():
    spec = importlib.util.spec_from_file_location("get_mpnet", REPO / "scripts" / "get_mpnet.py")
    get_mpnet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(get_mpnet)
    assert get_mpnet.verified(FOLDER)  # the upstream sha256, or it exits 2

    from talk_cli.encode import EncodeSettings, encode_texts, load_language_model

    lm = load_language_model(str(FOLDER))
    assert (lm.identity.name, lm.identity.revision) == ("sentence-transformers/all-mpnet-base-v2", "e8c3b32edf5434bc2275fc9bab85f82640a19130")
    assert lm.identity.hidden_size == 768 and lm.embedding_size == 768
    texts = ["Neural networks learn image features.", "Deep learning models recognise pictures.", "The recipe needs flour, butter and sugar."]
    features, _ = encode_texts(texts, lm, EncodeSettings(max_length=32), torch.device("cpu"))
    similar, unrelated = (torch.nn.functional.cosine_similarity(features[0], features[i], dim=0) for i in (1, 2))
    assert similar > unrelated + 0.2
