"""Real drawings as training data: transparent PNGs on white, and the Twemoji package as category folders."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
from PIL import Image

from training.data import load_dataset
from training.prepare_twemoji import folder_name, prepare


def drawing(mode: str) -> Image.Image:
    """A 8x8 red square in the middle of a transparent 16x16 image, in the given mode."""
    rgba = Image.new("RGBA", (16, 16), (0, 0, 0, 0))  # transparent black: must come out white, not black
    rgba.paste((200, 0, 0, 255), (4, 4, 12, 12))
    if mode == "P":
        return rgba.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)  # keeps a transparent index
    return rgba


def test_transparent_rgba_and_palette_images_are_composited_on_white(tmp_path):
    for mode in ("RGBA", "P"):
        image = drawing(mode)
        if mode == "P":
            transparent = image.getpixel((0, 0))
            image.info["transparency"] = transparent
            image.save(tmp_path / "p.png", transparency=transparent)
        else:
            image.save(tmp_path / "rgba.png")
    dataset = load_dataset(str(tmp_path), 16)
    for image in dataset.images.permute(0, 2, 3, 1).numpy():
        assert (image[0, 0] == 255).all()  # the transparent corner
        assert image[8, 8, 0] > 150 and image[8, 8, 1] < 60  # the red square


def png_bytes(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_prepare_twemoji_writes_one_folder_per_category_and_skips_swatches(tmp_path):
    catalogue = [
        {"image": "1f600.png", "category": "Smileys & Emotion", "has_img_twitter": True},
        {"image": "1f436.png", "category": "Animals & Nature", "has_img_twitter": True},
        {"image": "1f3fb.png", "category": "Component", "has_img_twitter": True},
        {"image": "1f9cc.png", "category": "People & Body", "has_img_twitter": False},
        {"image": "1f44b.png", "category": "People & Body", "has_img_twitter": True,
         "skin_variations": {"1F3FB": {"image": "1f44b-1f3fb.png", "has_img_twitter": True}}},
    ]
    package = tmp_path / "emoji-datasource-twitter-16.0.0.tgz"
    with tarfile.open(package, "w:gz") as archive:
        files = {"package/emoji.json": json.dumps(catalogue).encode()}
        for name in ("1f600.png", "1f436.png", "1f3fb.png", "1f9cc.png", "1f44b.png", "1f44b-1f3fb.png"):
            files[f"package/img/twitter/64/{name}"] = png_bytes((255, 200, 0, 255))
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    counts = prepare(package, tmp_path / "out")
    assert counts == {"animals-nature": 1, "people-body": 1, "smileys-emotion": 1}
    assert (tmp_path / "out" / "smileys-emotion" / "1f600.png").is_file()
    assert prepare(package, tmp_path / "with-skins", skin_variations=True)["people-body"] == 2
    dataset = load_dataset(str(tmp_path / "out"), 32)
    assert dataset.num_classes == 3 and sorted(dataset.labels.tolist()) == [0, 1, 2]
    assert folder_name("Travel & Places") == "travel-places"
    assert np.asarray(dataset.images).dtype == np.uint8
