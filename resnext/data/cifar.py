"""CIFAR-10 and CIFAR-100 from the official *binary* archives (never the pickled ones).

Layout (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"): each file is a run
of fixed-size records. CIFAR-10: 1 label byte, then 3,072 pixel bytes: the 1,024 red values,
then green, then blue, each plane 32x32 row-major. CIFAR-100: a coarse label byte, a fine
label byte, then the same 3,072 pixel bytes.

`root` may hold the archive (checked against its MD5, then unpacked next to it) or the
unpacked folder. With `download=True` the archive is fetched from the official site.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .tensors import DatasetPair, ImageTensors, channel_stats

SIDE = 32
PIXEL_BYTES = 3 * SIDE * SIDE


class DatasetUnavailableError(RuntimeError):
    """The dataset is not on disk and could not be downloaded; the message says what to do."""


class DatasetFileError(ValueError):
    """A dataset file is there but wrong (size, checksum, labels)."""


@dataclass(frozen=True)
class CifarArchive:
    name: str  # "cifar10" | "cifar100"
    url: str
    md5: str
    folder: str  # the folder the archive unpacks to
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_bytes: int  # bytes before the pixels in each record
    names_files: dict[str, str]  # label kind -> file of class names

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def record_bytes(self) -> int:
        return self.label_bytes + PIXEL_BYTES

    @property
    def members(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, *self.names_files.values())


CIFAR10 = CifarArchive(
    name="cifar10", url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5="c32a1d4ab5d03f1284b67883e8d87530", folder="cifar-10-batches-bin",
    train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)), test_files=("test_batch.bin",),
    label_bytes=1, names_files={"label": "batches.meta.txt"})
CIFAR100 = CifarArchive(
    name="cifar100", url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5="03b5dce01913d631647c71ecec9e9cb8", folder="cifar-100-binary",
    train_files=("train.bin",), test_files=("test.bin",), label_bytes=2,
    names_files={"coarse": "coarse_label_names.txt", "fine": "fine_label_names.txt"})
ARCHIVES = {"cifar10": CIFAR10, "cifar100": CIFAR100}


def cifar10(root: str | os.PathLike[str], download: bool = False) -> DatasetPair:
    """CIFAR-10 (60,000 32x32 images, 10 classes) from `root`."""
    return _load(ARCHIVES["cifar10"], Path(root), download, "label")


def cifar100(root: str | os.PathLike[str], download: bool = False,
             labels: str = "fine") -> DatasetPair:
    """CIFAR-100 with its 100 fine or 20 coarse labels (`labels="fine"` or `"coarse"`)."""
    if labels not in ("fine", "coarse"):
        raise ValueError(f"labels must be 'fine' or 'coarse', got {labels!r}")
    return _load(ARCHIVES["cifar100"], Path(root), download, labels)


def read_records(path: Path, label_bytes: int, label_index: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from a file of whole records."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + PIXEL_BYTES
    if raw.size % record:
        raise DatasetFileError(
            f"{path} holds {raw.size} bytes, not a whole number of {record}-byte records "
            f"({label_bytes} label byte(s) + {PIXEL_BYTES} pixel bytes): the file is truncated "
            f"or is not a CIFAR binary file")
    rows = raw.reshape(-1, record)
    labels = torch.from_numpy(rows[:, label_index].astype(np.int64))
    # Red plane, green plane, blue plane, each 32x32 row-major: exactly (3, 32, 32) in C order.
    images = torch.from_numpy(np.ascontiguousarray(rows[:, label_bytes:])).view(-1, 3, SIDE, SIDE)
    return images, labels


def _load(archive: CifarArchive, root: Path, download: bool, labels: str) -> DatasetPair:
    folder = _ensure_folder(archive, root, download)
    names_path = folder / archive.names_files[labels]
    if not names_path.is_file():
        raise DatasetFileError(f"{names_path} is missing: the class names file of {archive.name}")
    classes = tuple(line.strip() for line in names_path.read_text().splitlines() if line.strip())
    label_index = 0 if labels in ("label", "coarse") else 1
    splits = []
    for files in (archive.train_files, archive.test_files):
        parts = []
        for file in files:
            path = folder / file
            if not path.is_file():
                raise DatasetFileError(f"{path} is missing: {archive.folder}/ should hold "
                                       f"{', '.join(archive.members)}")
            parts.append(read_records(path, archive.label_bytes, label_index))
        images = torch.cat([p[0] for p in parts])
        targets = torch.cat([p[1] for p in parts])
        if targets.numel() and int(targets.max()) >= len(classes):
            raise DatasetFileError(
                f"a record in {archive.folder} has label {int(targets.max())}, but "
                f"{names_path.name} names only {len(classes)} classes")
        splits.append(ImageTensors(images, targets))
    train, test = splits
    if len(train) == 0 or len(test) == 0:
        raise DatasetFileError(f"{folder} holds no training or no test records")
    mean, std = channel_stats(train.images)
    name = archive.name
    spec: dict = {"name": name, "image_size": SIDE, "root": str(root.resolve())}
    if archive.name == "cifar100":
        spec["labels"] = labels
    return DatasetPair(name, train, test, classes, mean, std, SIDE, spec)


def _ensure_folder(archive: CifarArchive, root: Path, download: bool) -> Path:
    folder = root / archive.folder
    if folder.is_dir():
        return folder
    tarball = root / archive.filename
    if not tarball.is_file():
        if not download:
            raise DatasetUnavailableError(_offline_help(archive, root, "not found"))
        _download(archive, tarball)
    _check_md5(tarball, archive.md5)
    _unpack(archive, tarball, root)
    return folder


def _offline_help(archive: CifarArchive, root: Path, what: str) -> str:
    return (f"{archive.name} {what}: put {archive.filename} (from {archive.url}, MD5 "
            f"{archive.md5}) in {root.resolve()}, or its unpacked folder {archive.folder}/ "
            f"there, or pass download=True (--download on the command line) on a machine "
            f"that can reach {archive.url.split('/')[2]}")


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_md5(path: Path, expected: str) -> None:
    actual = md5_of(path)
    if actual != expected:
        raise DatasetFileError(f"{path} has MD5 {actual}, expected {expected}: the file is "
                               f"damaged or not the official archive; delete it and fetch it again")


def _unpack(archive: CifarArchive, tarball: Path, root: Path) -> None:
    """Extract exactly the files we read, by name: no path in the archive reaches the disk."""
    staging = root / f".{archive.folder}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    wanted = {f"{archive.folder}/{member}": member for member in archive.members}
    found = set()
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for info in tar:
                name = info.name[2:] if info.name.startswith("./") else info.name
                if name in wanted and info.isfile():
                    source = tar.extractfile(info)
                    assert source is not None
                    with open(staging / wanted[name], "wb") as target:
                        shutil.copyfileobj(source, target)
                    found.add(name)
        missing = sorted(set(wanted) - found)
        if missing:
            raise DatasetFileError(f"{tarball} lacks {', '.join(missing)}")
        os.replace(staging, root / archive.folder)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DatasetFileError(f"{tarball} could not be unpacked ({error})") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(archive: CifarArchive, target: Path, timeout: float = 30.0) -> None:
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with urllib.request.urlopen(archive.url, timeout=timeout) as response, \
                open(partial, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=archive.filename,
                      file=sys.stderr, disable=None) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    file.write(block)
                    bar.update(len(block))
        _check_md5(partial, archive.md5)
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise DatasetUnavailableError(
            _offline_help(archive, target.parent, f"could not be downloaded ({error})")) from error
    finally:
        partial.unlink(missing_ok=True)
