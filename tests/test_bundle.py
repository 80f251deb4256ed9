"""The bundle format: round trip, conformance to the written spec, and refusal of damage."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, make_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talk_cli import load_bundle
from talk_cli.bundle import BundleError, spec, write_bundle
from talk_cli.bundle.errors import (
    BundleExistsError,
    ChecksumError,
    ManifestError,
    TensorError,
    UnsafePathError,
    UnsupportedVersionError,
)


@pytest.mark.parametrize("soft", [False, True])
def test_round_trip(tmp_path, soft):
    original = make_bundle(soft=soft)
    write_bundle(original, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    for name, tensor in original.tensors().items():
        assert torch.equal(loaded.tensors()[name], tensor), name
    assert (loaded.soft_labels is not None) == soft
    assert loaded.dataset == original.dataset and loaded.lm == original.lm and loaded.distillation == original.distillation
    assert loaded.format_version == spec.FORMAT_VERSION and loaded.created


def test_to_pyg(tmp_path):
    write_bundle(make_bundle(), tmp_path / "b")
    data = load_bundle(tmp_path / "b").to_pyg()
    assert data.num_nodes == 6 and data.x.shape == (6, 16)
    dense = torch.zeros(6, 6)
    dense[data.edge_index[0], data.edge_index[1]] = data.edge_weight
    assert torch.equal(dense, load_bundle(tmp_path / "b").adjacency)


def test_written_bundle_conforms_to_the_documented_spec(tmp_path):
    """Read docs/bundle-format.md itself and check a written bundle against its tables."""
    doc = (REPO / "docs" / "bundle-format.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `\[([^\]]*)\]` \| (\w+) \| (yes|no) \|", doc, flags=re.MULTILINE)
    documented = {name: (dims.split(", "), dtype, required == "yes") for name, dims, dtype, required in rows}
    assert set(documented) == {"token_embeddings", "attention_mask", "adjacency", "labels", "features", "soft_labels"}
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", doc, flags=re.DOTALL).group(1).replace("{...}", "{}"))

    write_bundle(make_bundle(n=5, seq_len=3, hidden=16, num_classes=3, soft=True), tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["README.md", "manifest.yaml", "synthetic.safetensors"]
    manifest = yaml.safe_load((tmp_path / "b" / "manifest.yaml").read_text())
    # evaluation is absent until evaluated; made and privacy are what `talk distill` records (this bundle was built in Python)
    assert set(manifest) == set(example) - {"evaluation", "made", "privacy"}
    unpinned = {"lm": {"revision"}}  # a model that is not a known one records no revision
    for section in ("tool", "dataset", "lm", "distillation", "tensors", "card"):
        assert set(manifest[section]) == set(example[section]) - unpinned.get(section, set()), section
    sizes = {"n": 5, "L": 3, "h": 16, "e": 16, "C": 3}
    for name, entry in manifest["tensors"]["inventory"].items():
        dims, dtype, _ = documented[name]
        assert entry == {"shape": [sizes[d] for d in dims], "dtype": dtype}
    assert {n for n, (_, _, req) in documented.items() if req} <= set(manifest["tensors"]["inventory"])
    assert manifest["format"] == "talk-bundle" and manifest["format_version"] == "1.4.0"


def test_a_format_1_0_bundle_without_the_1_1_fields_still_loads(tmp_path):
    write_bundle(make_bundle(), tmp_path / "b")
    manifest_file = tmp_path / "b" / "manifest.yaml"
    manifest = yaml.safe_load(manifest_file.read_text())
    del manifest["lm"]["embedding_size"], manifest["distillation"]["curve"]
    manifest["format_version"] = "1.0.0"
    manifest_file.write_text(yaml.safe_dump(manifest))
    loaded = load_bundle(tmp_path / "b")
    assert loaded.lm.embedding_size == loaded.lm.hidden_size and loaded.distillation.curve == []


def test_token_embeddings_may_be_narrower_than_the_hidden_size(tmp_path):
    bundle = make_bundle(hidden=16)
    bundle.token_embeddings = bundle.token_embeddings[:, :, :8].clone()
    with pytest.raises(ManifestError, match="implies"):
        write_bundle(bundle, tmp_path / "b")  # the manifest says e = h = 16
    bundle.lm = dataclasses.replace(bundle.lm, embedding_size=8)
    write_bundle(bundle, tmp_path / "b")
    assert load_bundle(tmp_path / "b").token_embeddings.shape == (6, 4, 8)


def test_writer_refuses_to_overwrite_without_force(tmp_path):
    write_bundle(make_bundle(seed=1), tmp_path / "b")
    with pytest.raises(BundleExistsError, match="already exists"):
        write_bundle(make_bundle(seed=2), tmp_path / "b")
    write_bundle(make_bundle(seed=2), tmp_path / "b", force=True)
    assert torch.equal(load_bundle(tmp_path / "b").features, make_bundle(seed=2).features)
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temporary left behind
    (tmp_path / "notabundle").mkdir()
    with pytest.raises(BundleExistsError, match="not a bundle"):
        write_bundle(make_bundle(), tmp_path / "notabundle", force=True)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    import talk_cli.atomic as module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "fsync_directory", interrupted)  # the first fsync of the staged bundle
    with pytest.raises(KeyboardInterrupt):
        write_bundle(make_bundle(), tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_invalid_content(tmp_path):
    bad = make_bundle()
    bad.adjacency[0, 1] = -1.0
    with pytest.raises(TensorError, match="negative"):
        write_bundle(bad, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


# --- damage: each kind gets a specific error -------------------------------------------------


def edit_manifest(path: Path, change) -> None:
    manifest = yaml.safe_load((path / "manifest.yaml").read_text())
    change(manifest)
    (path / "manifest.yaml").write_text(yaml.safe_dump(manifest))


DAMAGE = {
    "unknown major version": (lambda m: m.update(format_version="2.0.0"), UnsupportedVersionError, "not supported"),
    "not semver": (lambda m: m.update(format_version="one"), ManifestError, "MAJOR.MINOR.PATCH"),
    "wrong format": (lambda m: m.update(format="zip"), ManifestError, "format is 'zip'"),
    "missing section": (lambda m: m.pop("lm"), ManifestError, "missing 'lm'"),
    "unknown key": (lambda m: m.update(extra=1), ManifestError, "unknown key(s) ['extra']"),
    "missing field": (lambda m: m["dataset"].pop("content_hash"), ManifestError, "'dataset.content_hash' is missing"),
    "bad hash field": (lambda m: m["lm"].update(weights_sha256="xyz"), ManifestError, "'lm.weights_sha256' must be sha256"),
    "wrong type": (lambda m: m["distillation"].update(seed="0"), ManifestError, "'distillation.seed' must be int"),
    "ratio out of range": (lambda m: m["distillation"].update(ratio=2.0), ManifestError, "ratio' must be in (0, 1]"),
    "label names count": (lambda m: m["dataset"].update(label_names=["x"]), ManifestError, "1 names for 3 classes"),
    "hostile path": (lambda m: m["tensors"].update(file="../outside.safetensors"), UnsafePathError, "not a plain file name"),
    "absolute path": (lambda m: m["tensors"].update(file="/etc/passwd"), UnsafePathError, "not a plain file name"),
    "bad checksum": (lambda m: m["tensors"].update(sha256="0" * 64), ChecksumError, "does not match"),
    "inventory shape": (
        lambda m: m["tensors"]["inventory"]["features"].update(shape=[6, 17]),
        ManifestError,
        "disagrees with the manifest",
    ),
    "inventory dtype": (
        lambda m: m["tensors"]["inventory"]["labels"].update(dtype="float32"),
        ManifestError,
        "dtype must be int64",
    ),
    "unknown tensor": (
        lambda m: m["tensors"]["inventory"].update(evil={"shape": [1], "dtype": "float32"}),
        ManifestError,
        "unknown ['evil']",
    ),
    "absurd size": (
        lambda m: (
            m["distillation"].update(num_synthetic=10**6),
            m["tensors"]["inventory"]["adjacency"].update(shape=[10**6, 10**6]),
        ),
        ManifestError,
        "is missing",  # other tensors disagree first; the size check covers consistent absurd inventories
    ),
    "num_synthetic mismatch": (
        lambda m: m["distillation"].update(num_synthetic=7),
        ManifestError,
        "disagrees with the manifest",
    ),
}


@pytest.mark.parametrize("case", [c for c in DAMAGE if c != "absurd size"])
def test_manifest_damage_is_named(tmp_path, case):
    change, error, message = DAMAGE[case]
    write_bundle(make_bundle(), tmp_path / "b")
    edit_manifest(tmp_path / "b", change)
    with pytest.raises(error) as caught:
        load_bundle(tmp_path / "b")
    assert message in str(caught.value)


def test_consistent_but_absurd_inventory_is_refused_before_reading(tmp_path):
    write_bundle(make_bundle(), tmp_path / "b")

    def absurd(m):
        n = 200_000
        m["distillation"]["num_synthetic"] = n
        inventory = m["tensors"]["inventory"]
        inventory["token_embeddings"]["shape"] = [n, 4, 16]
        inventory["attention_mask"]["shape"] = [n, 4]
        inventory["adjacency"]["shape"] = [n, n]
        inventory["labels"]["shape"] = [n]
        inventory["features"]["shape"] = [n, 16]

    edit_manifest(tmp_path / "b", absurd)
    with pytest.raises(ManifestError, match="over the .*-byte limit"):
        load_bundle(tmp_path / "b")


def test_symlinked_tensor_file_is_refused(tmp_path):
    write_bundle(make_bundle(), tmp_path / "b")
    outside = tmp_path / "outside.safetensors"
    (tmp_path / "b" / "synthetic.safetensors").rename(outside)
    (tmp_path / "b" / "synthetic.safetensors").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="link or lies outside"):
        load_bundle(tmp_path / "b")


def test_value_rules(tmp_path):
    from safetensors.torch import save_file

    from talk_cli.bundle.bundle import sha256_file

    cases = {
        "labels": (lambda t: t["labels"].fill_(5), "outside 0..2"),
        "attention_mask": (lambda t: t["attention_mask"][2].zero_(), "no attended position"),
        "features": (lambda t: t["features"].__setitem__((0, 0), float("nan")), "non-finite"),
        "adjacency": (lambda t: t["adjacency"].__setitem__((0, 1), t["adjacency"][0, 1] + 1), "not symmetric"),
    }
    for case, (damage, message) in cases.items():
        path = tmp_path / case
        write_bundle(make_bundle(), path)
        tensors = make_bundle().tensors()
        damage(tensors)
        save_file(tensors, str(path / "synthetic.safetensors"))
        edit_manifest(path, lambda m: m["tensors"].update(sha256=sha256_file(path / "synthetic.safetensors")))
        with pytest.raises(TensorError, match=message):
            load_bundle(path)


def test_missing_bundle_and_manifest(tmp_path):
    with pytest.raises(BundleError, match="not a bundle directory"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no manifest.yaml"):
        load_bundle(tmp_path / "empty")


# --- property-based: arbitrary corruption never escapes as anything but a BundleError --------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "b"
    write_bundle(make_bundle(soft=True), path)
    return path


def fresh_copy(pristine: Path, tmp_path_factory) -> Path:
    import shutil

    target = tmp_path_factory.mktemp("mut") / "b"
    shutil.copytree(pristine, target)
    return target


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(["manifest.yaml", "synthetic.safetensors"]),
    mode=st.sampled_from(["truncate", "flip", "append", "splice"]),
    position=st.floats(0, 1),
    payload=st.binary(min_size=1, max_size=64),
)
def test_corrupted_files_fail_cleanly(pristine, tmp_path_factory, target, mode, position, payload):
    path = fresh_copy(pristine, tmp_path_factory)
    data = bytearray((path / target).read_bytes())
    at = int(position * (len(data) - 1))
    if mode == "truncate":
        data = data[:at]
    elif mode == "flip":
        data[at] ^= 0xFF
    elif mode == "append":
        data += payload
    else:
        data[at : at + len(payload)] = payload
    (path / target).write_bytes(bytes(data))
    try:
        load_bundle(path)
    except BundleError as err:
        assert str(err)  # a message, not an empty error
    # a mutation that keeps the file valid (e.g. YAML whitespace) may load: that is fine too


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    section=st.sampled_from(["dataset", "lm", "distillation", "tensors", "tool", None]),
    key=st.text(max_size=12),
    value=yaml_values,
    use_existing_key=st.booleans(),
)
def test_mutated_manifests_fail_cleanly(pristine, tmp_path_factory, section, key, value, use_existing_key):
    path = fresh_copy(pristine, tmp_path_factory)
    manifest = yaml.safe_load((path / "manifest.yaml").read_text())
    container = manifest if section is None else manifest[section]
    if use_existing_key:
        key = sorted(container)[len(key) % len(container)]
    container[key] = value
    (path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    try:
        load_bundle(path)
    except BundleError as err:
        assert str(err)


def test_newer_minor_version_with_added_keys_still_loads(tmp_path):
    write_bundle(make_bundle(), tmp_path / "b")

    def newer(m):
        m["format_version"] = "1.7.0"
        m["provenance"] = {"host": "x"}
        m["lm"]["revision"] = "abc"

    edit_manifest(tmp_path / "b", newer)
    assert load_bundle(tmp_path / "b").lm.name == "tiny"
    edit_manifest(tmp_path / "b", lambda m: m.update(format_version="1.0.3"))
    with pytest.raises(ManifestError, match="unknown key"):
        load_bundle(tmp_path / "b")
