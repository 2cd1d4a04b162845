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
    (dict(image_size=8), "image_size must be an integer in [16, 256], got 8"),
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
