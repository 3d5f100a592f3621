"""`python -m training.prepare_twemoji`: the Twemoji drawings as an image folder, one subfolder per category.

Input: the npm package emoji-datasource-twitter 16.0.0 (`npm pack emoji-datasource-twitter@16.0.0` writes
emoji-datasource-twitter-16.0.0.tgz). Output: OUT/<category>/<image>.png for every emoji that has a Twitter
image, so that `--data OUT --conditional` trains on the categories as classes. The graphics are by Twitter,
Inc and other contributors, CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
"""
from __future__ import annotations

import argparse
import json
import re
import tarfile
from pathlib import Path

IMAGE_FOLDER = "package/img/twitter/64/"
SKIPPED_CATEGORIES = ("Component",)  # five skin-tone and hair swatches: not drawings, too few for a class


def folder_name(category: str) -> str:
    """'Smileys & Emotion' -> 'smileys-emotion'."""
    return re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-")


def category_of_images(catalogue: list[dict]) -> dict[str, str]:
    """Image file name -> category, for every emoji (and skin-tone variation) with a Twitter image."""
    categories = {}
    for emoji in catalogue:
        if emoji.get("has_img_twitter") and emoji["category"] not in SKIPPED_CATEGORIES:
            categories[emoji["image"]] = emoji["category"]
        for variation in (emoji.get("skin_variations") or {}).values():
            if variation.get("has_img_twitter") and emoji["category"] not in SKIPPED_CATEGORIES:
                categories[variation["image"]] = emoji["category"]
    return categories


def prepare(package: Path, out: Path, skin_variations: bool = False) -> dict[str, int]:
    """Extract the images into out/<category>/; returns images per category folder."""
    with tarfile.open(package, "r:gz") as archive:
        catalogue = json.load(archive.extractfile("package/emoji.json"))
        categories = category_of_images(catalogue if skin_variations else
                                        [{**emoji, "skin_variations": None} for emoji in catalogue])
        counts: dict[str, int] = {}
        for member in archive.getmembers():
            name = member.name.removeprefix(IMAGE_FOLDER)
            if not member.name.startswith(IMAGE_FOLDER) or name not in categories or not member.isfile():
                continue
            target = out / folder_name(categories[name]) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
            counts[target.parent.name] = counts.get(target.parent.name, 0) + 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> None:
    """Parse flags and prepare the folder."""
    parser = argparse.ArgumentParser(prog="python -m training.prepare_twemoji", description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True, help="emoji-datasource-twitter-16.0.0.tgz from npm pack")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (e.g. data/twemoji)")
    parser.add_argument("--skin-variations", action="store_true",
                        help="also the skin-tone variations of people (default: the 1,906 base emoji only)")
    args = parser.parse_args(argv)
    if not args.package.is_file():
        parser.error(f"{args.package}: no such file (run: npm pack emoji-datasource-twitter@16.0.0)")
    counts = prepare(args.package, args.out, args.skin_variations)
    print(f"wrote {sum(counts.values())} images in {len(counts)} classes to {args.out}: {counts}")


if __name__ == "__main__":
    main()
