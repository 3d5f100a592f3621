"""Tests for training/data.py: procedural faces, image folders, CIFAR pickles and batch sampling."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from training.data import ImageDataset, load_dataset, sample_batch, to_model_range
from training.faces import FACE_CLASSES, face_parameters, render_faces


def pixel_at(images: np.ndarray, index: int, x: float, y: float) -> np.ndarray:
    """Colour (3,) of image `index` at normalised coordinates (x, y) in [-1, 1], y pointing down."""
    resolution = images.shape[1]
    column = int(np.clip(np.floor((x + 1) / 2 * resolution), 0, resolution - 1))
    row = int(np.clip(np.floor((y + 1) / 2 * resolution), 0, resolution - 1))
    return images[index, row, column].astype(np.int64)


def closer_to(colour: np.ndarray, candidate: np.ndarray, other: np.ndarray) -> bool:
    """Whether colour is nearer candidate than other (squared RGB distance)."""
    return ((colour - candidate) ** 2).sum() < ((colour - other) ** 2).sum()


@pytest.mark.parametrize("resolution, count", [(32, 64), (33, 16), (64, 16), (128, 8)])
def test_faces_are_exactly_mirror_symmetric(resolution, count):
    images, _ = render_faces(count, resolution, seed=3)
    assert images.shape == (count, resolution, resolution, 3) and images.dtype == np.uint8
    assert np.array_equal(images, images[:, :, ::-1])


def test_both_eyes_carry_the_same_random_colour():
    count, resolution = 24, 128
    images, _ = render_faces(count, resolution, seed=7)
    faces = face_parameters(count, seed=7)
    for index in range(count):
        # Three quarters of the way out from the centre: inside the iris, outside the pupil.
        iris_x = faces.eye_offset_x[index] + 0.75 * faces.eye_radius_x[index]
        eye_y = faces.eye_centre_y[index]
        left, right = pixel_at(images, index, -iris_x, eye_y), pixel_at(images, index, iris_x, eye_y)
        assert np.abs(left - faces.eye_colour[index]).max() <= 1
        assert np.abs(right - faces.eye_colour[index]).max() <= 1
        pupil = pixel_at(images, index, -faces.eye_offset_x[index], eye_y)
        assert pupil.max() < 60
    assert np.all(faces.eye_offset_x >= 0.3)  # eyes at least 30% of the width from the centre line


def test_eye_colours_cover_every_hue_so_one_eye_must_be_read_from_the_other():
    colours = face_parameters(400, seed=0).eye_colour
    dominant_channel = colours.argmax(axis=1)
    assert set(dominant_channel.tolist()) == {0, 1, 2}
    assert colours.std(axis=0).min() > 50


def test_mouth_shape_follows_the_label():
    count, resolution = 30, 256
    images, labels = render_faces(count, resolution, seed=11)
    faces = face_parameters(count, seed=11)
    for index in range(count):
        centre_y, half_width = faces.mouth_centre_y[index], faces.mouth_half_width[index]
        mouth, skin = faces.mouth_colour[index], faces.skin_colour[index]
        above_centre = pixel_at(images, index, 0.0, centre_y - 0.1)
        below_bar = pixel_at(images, index, 0.0, centre_y + 0.225 * half_width + 0.04)
        is_open = closer_to(above_centre, mouth, skin)
        is_smile = closer_to(below_bar, mouth, skin) and not is_open
        expected = FACE_CLASSES[labels[index]]
        observed = "open" if is_open else "smile" if is_smile else "neutral"
        assert observed == expected, f"face {index}"


def test_rendering_is_deterministic_and_slices_match_a_bigger_render():
    images, labels = render_faces(12, 32, seed=5)
    again, again_labels = render_faces(12, 32, seed=5)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    part, part_labels = render_faces(4, 32, seed=5, first_index=7)
    assert np.array_equal(part, images[7:11]) and np.array_equal(part_labels, labels[7:11])


def test_different_seeds_give_different_faces():
    first, _ = render_faces(8, 32, seed=0)
    second, _ = render_faces(8, 32, seed=1)
    assert all(not np.array_equal(first[index], second[index]) for index in range(8))
    assert len({image.tobytes() for image in first}) == 8


def test_labels_are_in_range_and_every_class_occurs():
    _, labels = render_faces(300, 8, seed=2)
    assert labels.dtype == np.int64
    counts = np.bincount(labels, minlength=len(FACE_CLASSES))
    assert len(counts) == len(FACE_CLASSES) and counts.min() >= 60


def test_load_dataset_faces_matches_render_faces():
    dataset = load_dataset("faces", 32, size=10, seed=4)
    images, labels = render_faces(10, 32, seed=4)
    assert dataset.images.shape == (10, 3, 32, 32) and dataset.images.dtype == torch.uint8
    assert torch.equal(dataset.images, torch.from_numpy(images).permute(0, 3, 1, 2))
    assert torch.equal(dataset.labels, torch.from_numpy(labels))
    assert dataset.num_classes == 3 and dataset.name == "faces" and len(dataset) == 10


def write_three_band_image(path, width, height, vertical=False):
    """Red | green | blue bands with the green half in the middle, along the long side."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    length = height if vertical else width
    quarter = length // 4
    bands = [(slice(0, quarter), 0), (slice(quarter, length - quarter), 1), (slice(length - quarter, length), 2)]
    for band, channel in bands:
        if vertical:
            array[band, :, channel] = 255
        else:
            array[:, band, channel] = 255
    Image.fromarray(array).save(path)


def test_folder_images_are_resized_centre_cropped_and_labelled_by_subfolder(tmp_path):
    (tmp_path / "dogs").mkdir()
    (tmp_path / "cats" / "nested").mkdir(parents=True)
    write_three_band_image(tmp_path / "dogs" / "wide.png", 64, 32)
    write_three_band_image(tmp_path / "cats" / "nested" / "tall.bmp", 24, 48, vertical=True)
    Image.new("RGB", (5, 7), (10, 20, 30)).save(tmp_path / "cats" / "small.jpg")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    dataset = load_dataset(str(tmp_path), 16)
    assert dataset.images.shape == (3, 3, 16, 16) and dataset.images.dtype == torch.uint8
    assert dataset.name == f"folder:{tmp_path}" and dataset.num_classes == 2
    # Sorted paths: cats/nested/tall.bmp, cats/small.jpg, dogs/wide.png; classes cats=0, dogs=1.
    assert dataset.labels.tolist() == [0, 0, 1]
    for index in (0, 2):  # the centre crop keeps only the green middle half of the long side
        interior = dataset.images[index, :, 2:14, 2:14].to(torch.int64)
        assert interior[1].min() > 200 and interior[0].max() < 60 and interior[2].max() < 60
    assert (dataset.images[1].to(torch.int64) - torch.tensor([10, 20, 30])[:, None, None]).abs().max() <= 6


def test_folder_without_subfolder_classes_is_unlabelled(tmp_path):
    (tmp_path / "only").mkdir()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(tmp_path / "only" / "a.png")
    Image.new("RGB", (20, 20), (4, 5, 6)).save(tmp_path / "only" / "b.webp")
    dataset = load_dataset(str(tmp_path), 8)
    assert dataset.labels is None and dataset.num_classes == 0 and len(dataset) == 2


def test_unreadable_images_are_skipped_with_a_warning_naming_them(tmp_path):
    Image.new("RGB", (20, 20), (1, 2, 3)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match="broken.png"):
        dataset = load_dataset(str(tmp_path), 8)
    assert len(dataset) == 1


def test_folder_with_no_readable_images_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_dataset(str(empty), 8)
    (empty / "broken.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="could be read"):
        load_dataset(str(empty), 8)


def write_cifar_folder(folder, batch_sizes):
    """Fake CIFAR-10 python batches in the real format: dicts with bytes keys, rows of R, G, B planes."""
    folder.mkdir()
    all_labels = []
    for number, size in enumerate(batch_sizes, start=1):
        labels = [(number * 3 + index) % 10 for index in range(size)]
        data = np.zeros((size, 3 * 32 * 32), dtype=np.uint8)
        for index, label in enumerate(labels):
            data[index, :1024] = 20 * label  # red plane
            data[index, 1024:2048] = 100  # green plane
            data[index, 2048:] = 255 - 20 * label  # blue plane
        batch = {b"batch_label": b"fake", b"labels": labels, b"data": data,
                 b"filenames": [b"x.png"] * size}
        with open(folder / f"data_batch_{number}", "wb") as handle:
            pickle.dump(batch, handle)
        all_labels += labels
    meta = {b"label_names": [f"class{index}".encode() for index in range(10)], b"num_cases_per_batch": 10}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle)
    return all_labels


def test_cifar_pickles_load_with_labels_and_channel_planes(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    labels = write_cifar_folder(folder, [3, 2])
    dataset = load_dataset(str(folder), 32)
    assert dataset.images.shape == (5, 3, 32, 32) and dataset.images.dtype == torch.uint8
    assert dataset.labels.tolist() == labels and dataset.num_classes == 10
    assert dataset.name == f"cifar10:{folder}"
    first_label = labels[0]
    assert dataset.images[0, 0].unique().tolist() == [20 * first_label]
    assert dataset.images[0, 1].unique().tolist() == [100]
    assert dataset.images[0, 2].unique().tolist() == [255 - 20 * first_label]
    resized = load_dataset(str(tmp_path), 16)  # the parent of cifar-10-batches-py works too
    assert resized.images.shape == (5, 3, 16, 16)
    assert resized.images[0, 1].unique().tolist() == [100]


def test_corrupt_cifar_pickle_is_an_error_naming_the_file(tmp_path):
    folder = tmp_path / "cifar"
    write_cifar_folder(folder, [2, 2])
    (folder / "data_batch_2").write_bytes(b"\x80\x04truncated")
    with pytest.raises(ValueError, match="data_batch_2"):
        load_dataset(str(folder), 32)


@pytest.mark.parametrize("source", ["no/such/folder", "celeba"])
def test_unknown_source_error_says_what_is_accepted(source):
    with pytest.raises(ValueError, match="faces") as error:
        load_dataset(source, 32)
    assert source in str(error.value) and "folder" in str(error.value) and "CIFAR" in str(error.value)


def test_model_range_maps_uint8_onto_minus_one_to_one():
    images = torch.tensor([0, 255, 128], dtype=torch.uint8).reshape(1, 3, 1, 1)
    scaled = to_model_range(images)
    assert scaled.dtype == torch.float32
    assert torch.allclose(scaled.flatten(), torch.tensor([-1.0, 1.0, 128 / 127.5 - 1]), atol=1e-6)
    with pytest.raises(TypeError):
        to_model_range(images.float())


def test_sample_batch_is_reproducible_from_the_generator_state():
    dataset = load_dataset("faces", 16, size=50, seed=0)
    generator = torch.Generator().manual_seed(123)
    state = generator.get_state()
    images, labels = sample_batch(dataset, 8, generator)
    generator.set_state(state)
    again_images, again_labels = sample_batch(dataset, 8, generator)
    assert torch.equal(images, again_images) and torch.equal(labels, again_labels)
    assert images.shape == (8, 3, 16, 16) and images.dtype == torch.uint8
    next_images, _ = sample_batch(dataset, 8, generator)
    assert not torch.equal(images, next_images)
    # Labels travel with their images.
    for image, label in zip(images, labels):
        matches = (dataset.images == image).flatten(1).all(dim=1).nonzero().flatten()
        assert label in dataset.labels[matches]


def test_sample_batch_of_unlabelled_data_returns_no_labels():
    dataset = ImageDataset(images=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), labels=None, num_classes=0,
                           name="folder:/x")
    images, labels = sample_batch(dataset, 3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, 8, 8) and labels is None
