"""resnext.data: the generated shapes, the CIFAR binary readers and image folders."""

import dataclasses
import hashlib
import http.server
import io
import re
import tarfile
import threading
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from resnext import data

# Shapes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_shapes():
    return data.shapes(n_train=300, n_test=120, image_size=32, seed=3)


def test_shapes_same_seed_same_bytes_other_seed_other_bytes(small_shapes):
    again = data.shapes(n_train=300, n_test=120, image_size=32, seed=3)
    assert torch.equal(again.train.images, small_shapes.train.images)
    assert torch.equal(again.test.masks, small_shapes.test.masks)
    assert torch.equal(again.train.labels, small_shapes.train.labels)
    other = data.shapes(n_train=300, n_test=120, image_size=32, seed=4)
    assert not torch.equal(other.train.images, small_shapes.train.images)
    # The test split does not depend on the size of the training split.
    assert torch.equal(data.shapes(n_train=50, n_test=120, seed=3).test.images,
                       small_shapes.test.images)


def test_shapes_items_classes_and_statistics(small_shapes):
    pair = small_shapes
    assert len(pair.classes) >= 6 and len(set(pair.classes)) == len(pair.classes)
    image, label = pair.train[5]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert isinstance(label, int) and 0 <= label < len(pair.classes)
    # Balanced classes.
    counts = torch.bincount(pair.train.labels, minlength=len(pair.classes))
    assert int(counts.max() - counts.min()) <= 1
    # mean/std: the training images' own, computed here independently in float64.
    pixels = pair.train.images.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    assert np.allclose(pair.mean, pixels.mean(1).numpy(), atol=1e-5)
    assert np.allclose(pair.std, pixels.std(1, unbiased=False).numpy(), atol=1e-5)
    assert pair.image_size == 32 and pair.name == "shapes"


def test_shapes_masks_cover_one_uniformly_coloured_object(small_shapes):
    masks = small_shapes.test.masks
    assert masks.dtype == torch.bool and masks.shape == (120, 32, 32)
    images = small_shapes.test.images
    for index in range(len(small_shapes.test)):
        mask = masks[index]
        area = int(mask.sum())
        assert 20 <= area <= 0.6 * 32 * 32, area
        inside = images[index][:, mask]  # (3, area): every object pixel has the same colour
        assert torch.equal(inside, inside[:, :1].expand_as(inside))
        # The border of the mask changes colour: the mask is the object, not more.
        grown = torch.nn.functional.max_pool2d(mask[None, None].float(), 3, 1, 1)[0, 0].bool()
        ring = grown & ~mask
        outside = images[index][:, ring]
        assert (outside != inside[:, :1]).any(dim=0).float().mean() > 0.9
    assert small_shapes.train.masks is not None


def test_shapes_shortcut_marker_tells_the_class_in_training_only():
    pair = data.shapes(n_train=600, n_test=600, seed=1, shortcut=0.8)
    assert pair.name == "shapes-shortcut" and pair.test.marker_masks is not None
    marker = pair.test.marker_masks[0]
    assert marker[1, 1] and not marker[20, 20] and int(marker.sum()) == 25  # 5x5 at 32 px
    assert not (pair.test.masks & pair.test.marker_masks).any()

    def marker_matches(split):
        colours = split.images[:, :, 2, 2].float() / 255  # a pixel inside the marker
        palette = data.MARKER_COLOURS
        decoded = torch.cdist(colours, palette).argmin(1)
        return float((decoded == split.labels).float().mean())

    # Training: p + (1 - p) / 6 = 0.83 of markers show the class; test: chance, 1/6.
    assert 0.76 <= marker_matches(pair.train) <= 0.9
    assert marker_matches(pair.test) <= 0.25
    # marker_labels say which class colour each marker shows.
    for split in (pair.train, pair.test):
        colours = split.images[:, :, 2, 2]
        expected = (data.MARKER_COLOURS * 255).round().to(torch.uint8)
        assert torch.equal(colours, expected[split.marker_labels])


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_train=0), "n_train must be an integer in [1, 1000000], got 0"),
    (dict(image_size=8), "image_size must be an integer in [16, 512], got 8"),
    (dict(shortcut=1.5), "shortcut must be a probability in [0, 1]"),
])
def test_shapes_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        data.shapes(**kwargs)


def test_from_spec_rebuilds_the_same_pair(small_shapes):
    rebuilt = data.from_spec(small_shapes.describe())
    assert torch.equal(rebuilt.test.images, small_shapes.test.images)
    assert rebuilt.mean == small_shapes.mean
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.from_spec({"name": "mnist"})


# CIFAR ---------------------------------------------------------------------------------------


def record_bytes(label_bytes: tuple[int, ...], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return bytes(label_bytes) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()


def write_cifar10(folder, records_per_file=(3, 2, 1, 1, 2), test_records=2):
    """A CIFAR-10 binary folder in the official layout; returns {file: [record bytes]}."""
    folder.mkdir(parents=True)
    written = {}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)]
    for file_index, (name, count) in enumerate(zip(names + ["test_batch.bin"],
                                                   [*records_per_file, test_records])):
        records = [record_bytes(((file_index * 3 + r) % 10,), seed=100 * file_index + r)
                   for r in range(count)]
        (folder / name).write_bytes(b"".join(records))
        written[name] = records
    (folder / "batches.meta.txt").write_text(
        "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]) + "\n\n")
    return written


def check_every_byte(split, records, label_offset=0, label_bytes=1):
    for index, record in enumerate(records):
        raw = np.frombuffer(record, dtype=np.uint8)
        assert int(split.labels[index]) == raw[label_offset]
        image = split.images[index].numpy()
        for channel in range(3):
            for y in (0, 7, 31):
                for x in (0, 13, 31):
                    # Red plane, then green, then blue; each 32x32 row-major.
                    assert image[channel, y, x] == raw[label_bytes + channel * 1024 + y * 32 + x]
        assert image.tobytes() == record[label_bytes:]


def test_cifar10_reader_puts_every_byte_where_it_belongs(tmp_path):
    written = write_cifar10(tmp_path / "cifar-10-batches-bin")
    pair = data.cifar10(tmp_path)
    train_records = [r for i in range(1, 6) for r in written[f"data_batch_{i}.bin"]]
    assert len(pair.train) == len(train_records) == 9 and len(pair.test) == 2
    check_every_byte(pair.train, train_records)
    check_every_byte(pair.test, written["test_batch.bin"])
    assert pair.classes[0] == "airplane" and len(pair.classes) == 10
    image, label = pair.train[0]
    assert image.dtype == torch.float32 and torch.equal(image, pair.train.images[0].float() / 255)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    train = [record_bytes((r % 20, 50 + r), seed=r) for r in range(4)]
    test = [record_bytes((19, 99), seed=9)]
    (folder / "train.bin").write_bytes(b"".join(train))
    (folder / "test.bin").write_bytes(b"".join(test))
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)))
    fine = data.cifar100(tmp_path)
    check_every_byte(fine.train, train, label_offset=1, label_bytes=2)
    assert fine.train.labels.tolist() == [50, 51, 52, 53] and len(fine.classes) == 100
    coarse = data.cifar100(tmp_path, labels="coarse")
    check_every_byte(coarse.test, test, label_offset=0, label_bytes=2)
    assert coarse.classes[19] == "coarse19"
    with pytest.raises(ValueError, match="labels must be 'fine' or 'coarse'"):
        data.cifar100(tmp_path, labels="both")


def test_cifar_file_of_partial_records_is_a_clear_error(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-bin")
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(data.DatasetFileError,
                       match=r"data_batch_3.bin holds 3068 bytes, not a whole number of "
                             r"3073-byte records"):
        data.cifar10(tmp_path)


def make_archive(tmp_path) -> bytes:
    source = tmp_path / "source"
    write_cifar10(source / "cifar-10-batches-bin")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    return buffer.getvalue()


def test_cifar_archive_md5_checked_then_unpacked(tmp_path, monkeypatch):
    archive = make_archive(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "cifar-10-binary.tar.gz").write_bytes(archive)
    # The real MD5 is the official archive's: this small one must be refused.
    with pytest.raises(data.DatasetFileError,
                       match="has MD5 .* expected c32a1d4ab5d03f1284b67883e8d87530"):
        data.cifar10(root)
    assert not (root / "cifar-10-batches-bin").exists()
    patched = dataclasses.replace(data.cifar.CIFAR10, md5=hashlib.md5(archive).hexdigest())
    monkeypatch.setitem(data.cifar.ARCHIVES, "cifar10", patched)
    pair = data.cifar10(root)
    assert (root / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    assert torch.equal(pair.train.images, data.cifar10(tmp_path / "source").train.images)


def test_cifar_offline_says_which_file_goes_where(tmp_path, monkeypatch):
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.cifar10(tmp_path)
    message = str(info.value)
    assert "cifar-10-binary.tar.gz" in message and str(tmp_path) in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    # download=True without a network (a closed loopback port): the same advice.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    patched = dataclasses.replace(data.cifar.CIFAR10,
                                  url=f"http://127.0.0.1:{port}/cifar-10-binary.tar.gz")
    monkeypatch.setitem(data.cifar.ARCHIVES, "cifar10", patched)
    with pytest.raises(data.DatasetUnavailableError, match="could not be downloaded.*put "
                                                           "cifar-10-binary.tar.gz"):
        data.cifar10(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_cifar_download_from_a_loopback_server(tmp_path, monkeypatch):
    archive = make_archive(tmp_path)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/cifar-10-binary.tar.gz"
        root = tmp_path / "downloaded"
        wrong = dataclasses.replace(data.cifar.CIFAR10, url=url)
        monkeypatch.setitem(data.cifar.ARCHIVES, "cifar10", wrong)
        with pytest.raises(data.DatasetFileError, match="has MD5"):
            data.cifar10(root, download=True)
        assert not (root / "cifar-10-binary.tar.gz").exists()
        right = dataclasses.replace(wrong, md5=hashlib.md5(archive).hexdigest())
        monkeypatch.setitem(data.cifar.ARCHIVES, "cifar10", right)
        pair = data.cifar10(root, download=True)
        assert (root / "cifar-10-binary.tar.gz").read_bytes() == archive
        assert len(pair.train) == 9
    finally:
        server.shutdown()


# Image folders -------------------------------------------------------------------------------

COLOURS = {"red": (220, 30, 30), "blue": (20, 40, 200)}


def make_folder(root, per_class=5):
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (40 + i, 30), colour).save(root / name / f"{i}.png")
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_image_folder_reads_splits_and_skips_a_bad_file(tmp_path):
    make_folder(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pair = data.image_folder(tmp_path, image_size=16, test_fraction=0.4, seed=0)
    messages = [str(w.message) for w in caught if issubclass(w.category, data.SkippedImageWarning)]
    assert len(messages) == 1 and "broken.jpg" in messages[0]
    assert pair.classes == ("blue", "red")
    assert len(pair.train) == 6 and len(pair.test) == 4  # 2 of 5 per class
    for split in (pair.train, pair.test):
        assert split.images.shape[1:] == (3, 16, 16)
        for image, label in zip(split.images, split.labels):
            colour = COLOURS[pair.classes[int(label)]]
            assert torch.equal(image[:, 8, 8], torch.tensor(colour, dtype=torch.uint8))
    with pytest.warns(data.SkippedImageWarning, match="broken.jpg"):
        again = data.image_folder(tmp_path, image_size=16, test_fraction=0.4, seed=0)
    assert torch.equal(again.test.images, pair.test.images)
    with pytest.warns(data.SkippedImageWarning):
        rebuilt = data.from_spec(pair.describe())
    assert torch.equal(rebuilt.train.images, pair.train.images)


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image folder at"):
        data.image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="has no class sub-folders"):
        data.image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty in .* hold no readable image"):
        data.image_folder(tmp_path)


def test_subset_keeps_the_first_images_and_records_it(small_shapes):
    part = data.subset(small_shapes, 100, 50)
    assert len(part.train) == 100 and len(part.test) == 50
    assert torch.equal(part.test.masks, small_shapes.test.masks[:50])
    assert part.describe()["limit"] == {"train": 100, "test": 50}


# The registry: every dataset written once ---------------------------------------------------


def shapes_digest(pair) -> str:
    digest = hashlib.sha256()
    for split in (pair.train, pair.test):
        for tensor in (split.images, split.labels, split.masks, split.marker_masks,
                       split.marker_labels):
            if tensor is not None:
                digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_shapes_bytes_are_the_ones_before_the_drawing_was_split():
    """Hashes computed at 2d11e55 (before `_draw` became background, blob, shape and marker;
    torch 2.13 CPU): the refactor changed no byte, chunked (128 px: 128 images a chunk) or
    not, with the marker or without."""
    assert shapes_digest(data.shapes(n_train=60, n_test=30, image_size=32, seed=11)) == (
        "8255f11af9285840d8cbf4cc6d8da7fadf8aeb1bb89f1ab58ba67e17e0d082a3")
    assert shapes_digest(data.shapes(n_train=200, n_test=8, image_size=128, seed=2,
                                     shortcut=0.5)) == (
        "1d3957fe88f4519dcbc7e8f3a2137ca42a0e0ee8e77019feb68196fdcf574979")


def built(name, tmp_path):
    """A small instance of each registered dataset, made through the registry."""
    if name == "cifar10":
        write_cifar10(tmp_path / "cifar-10-batches-bin")
    if name == "cifar100":
        write_cifar100(tmp_path)
    if name.startswith("cifar"):
        return data.from_spec(data.request_spec(name, root=tmp_path, n_train=3, n_test=1))
    if data.DATASETS[name].takes_path:
        make_folder(tmp_path / "pets")
        with pytest.warns(data.SkippedImageWarning):
            return data.from_spec(data.request_spec(f"{name}:{tmp_path / 'pets'}",
                                                    image_size=16))
    return data.from_spec(data.request_spec(name, n_train=12, n_test=6, image_size=16))


def write_cifar100(root):
    folder = root / "cifar-100-binary"
    folder.mkdir()
    (folder / "train.bin").write_bytes(b"".join(record_bytes((r % 20, r), r) for r in range(4)))
    (folder / "test.bin").write_bytes(record_bytes((1, 99), 9))
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)))


@pytest.mark.parametrize("name", data.NAMES)
def test_each_registry_entry_says_what_its_dataset_is(name, tmp_path):
    entry = data.DATASETS[name]
    pair = built(name, tmp_path)
    assert pair.name == name and pair.describe()["name"] == name
    assert (pair.test.masks is not None) == entry.masks
    assert (pair.test.marker_masks is not None) == entry.marker
    assert (getattr(pair.test, "distractor_masks", None) is not None) == entry.distractors
    assert entry.num_classes in (None, pair.num_classes)
    assert pair.image_size == (entry.image_size if entry.fixed_image_size else 16)
    rebuilt = data.from_spec(pair.describe()) if not entry.takes_path else pair
    assert torch.equal(rebuilt.test.images, pair.test.images)


def test_registry_defaults_are_what_the_makers_make():
    shapes = data.DATASETS["shapes"]
    default = data.from_spec({"name": "shapes-shortcut", "sizes": {"train": 6, "test": 6}})
    assert default.spec["shortcut"] == data.DEFAULT_SHORTCUT  # the entry's own option
    assert default.image_size == shapes.image_size
    made = data.shapes(n_train=6, n_test=6, shortcut=data.DEFAULT_SHORTCUT)
    assert torch.equal(made.train.images, default.train.images)
    assert data.from_spec({"name": "shapes"}).describe()["sizes"] == dict(
        zip(("train", "test"), shapes.sizes))
    assert data.SHAPE_CLASSES == data.shapes(n_train=1, n_test=1).classes


def test_unknown_names_are_refused_with_the_registrys_list():
    with pytest.raises(ValueError, match="known: shapes, shapes-shortcut, shapes-distractors, "
                                         "cifar10, cifar100, folder"):
        data.from_spec({"name": "mnist"})
    for bad in ("mnist", "folder", "folder:", "shapes:x", None):
        with pytest.raises(ValueError, match=re.escape(
                "--data must be shapes, shapes-shortcut, shapes-distractors, cifar10, cifar100 "
                "or folder:PATH")):
            data.request_spec(bad)
    with pytest.raises(ValueError, match="'cifar10' needs a root"):
        data.from_spec({"name": "cifar10"})


def test_importing_the_registry_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, resnext.data as d; d.DATASETS; d.request_spec('cifar10', root='x'); "
            "from resnext.train import limits; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_new_dataset_is_one_registry_entry(monkeypatch):
    """What the harder shapes variant will do: one entry (here: shapes under another name),
    and the spec, the loader and the command line's --data know it."""
    from resnext.data import registry

    entry = dataclasses.replace(data.DATASETS["shapes"], name="shapes-test", description="x")
    monkeypatch.setitem(registry.DATASETS, entry.name, entry)
    assert "shapes-test" in registry.argument_forms()
    spec = data.request_spec("shapes-test", n_train=4, n_test=2, image_size=16, seed=5)
    assert data.from_spec(spec).train.images.shape == (4, 3, 16, 16)
