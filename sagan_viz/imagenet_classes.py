"""The 1,000 ImageNet (ILSVRC-2012) classes in the order class-conditional models index them: 0 tench ... 999
toilet tissue. BigGAN-deep's one-hot class vector uses this order.

data/imagenet_classes.txt holds one line per class, `WNID<TAB>name, synonym, ...` (WordNet's lemmas). It is the
well-known ILSVRC-2012 `synset_words.txt` (the same lines as Kaggle's `LOC_synset_mapping.txt`), with the space
after the WordNet id turned into a tab. Copied from github.com/IrvingShu/OpenCvandCaffeModel, synset_words.txt
at commit 99c0fa62ca6aec0de6f94bafff00210b3053b9fb (blob bd8b2f78d71e615ed8eb6daaa7b8cf0cc1ca2d9f); the same
1,000 (WordNet id, names) rows as three other public copies (shicai/MobileNet-Caffe synset.txt,
Jack-An/TorchDemo synset_words.txt, PRIYE/Resnet50_ImageNet1k LOC_synset_mapping.txt), and the WordNet ids
agree with pytorch_pretrained_biggan.utils.IMAGENET (tests/test_imagenet_classes.py).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

IMAGENET_CLASS_COUNT = 1000
DATA_FILE = "data/imagenet_classes.txt"
MAX_SUGGESTIONS = 5
_WNID = re.compile(r"n\d{8}")
_LABEL = re.compile(r"(\d+)\s*·\s*(.+)")  # what ClassName.label writes, e.g. a dropdown's value


@dataclass(frozen=True)
class ClassName:
    """One ImageNet class: its index in the model's class vector, WordNet id and names (the first is the usual one)."""

    index: int
    wnid: str
    names: tuple[str, ...]

    @property
    def label(self) -> str:
        """'207 · golden retriever': the index and the first name."""
        return f"{self.index} · {self.names[0]}"


def parse_class_line(index: int, line: str) -> ClassName:
    """One line of the data file, 'n01440764<TAB>tench, Tinca tinca', as the class at `index`."""
    wnid, _, names = line.partition("\t")
    if not _WNID.fullmatch(wnid) or not names.strip():
        raise ValueError(f"{DATA_FILE} line {index + 1}: expected 'WNID<TAB>name, ...', got {line!r}")
    return ClassName(index, wnid, tuple(name.strip() for name in names.split(",")))


@cache
def imagenet_classes() -> tuple[ClassName, ...]:
    """The 1,000 classes, index 0 first, read once from the package's data file."""
    text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    classes = tuple(parse_class_line(index, line) for index, line in enumerate(text.splitlines()))
    if len(classes) != IMAGENET_CLASS_COUNT:
        raise ValueError(f"{DATA_FILE}: {len(classes)} classes, expected {IMAGENET_CLASS_COUNT}")
    return classes


def class_index(text: str) -> int:
    """The class index for '207', '207 · golden retriever', a name in any case, or a WordNet id like 'n02099601'."""
    query = text.strip()
    classes = imagenet_classes()
    if re.fullmatch(r"[+-]?\d+", query):
        index = int(query)
        if not 0 <= index < IMAGENET_CLASS_COUNT:
            raise ValueError(f"ImageNet class {index} is out of range: the classes are 0-{IMAGENET_CLASS_COUNT - 1}")
        return index
    if not query:
        raise ValueError(f"no ImageNet class given: a number 0-{IMAGENET_CLASS_COUNT - 1}, a name or a WordNet id")
    label = _LABEL.fullmatch(query)
    if label and int(label[1]) < IMAGENET_CLASS_COUNT:
        entry = classes[int(label[1])]
        if entry.names[0] != label[2].strip():
            raise ValueError(f"{query!r} does not match the class list: {entry.index} is {entry.names[0]!r}")
        return entry.index
    if _WNID.fullmatch(query):
        for entry in classes:
            if entry.wnid == query:
                return entry.index
        raise ValueError(f"WordNet id {query} is not one of the {IMAGENET_CLASS_COUNT} ImageNet classes")
    matches = classes_named(query)
    if len(matches) == 1:
        return matches[0].index
    if matches:
        listed = ", ".join(f"{entry.label} ({entry.wnid})" for entry in matches[:MAX_SUGGESTIONS])
        raise ValueError(f"{query!r} names {len(matches)} ImageNet classes: {listed}; give the number instead")
    raise ValueError(unknown_class_message(query))


def classes_named(name: str) -> list[ClassName]:
    """Classes called `name`, best evidence first: as their first name (exact case, then any case), else as any
    of their names; 'partridge' is 86 (its first name), not also 82 (ruffed grouse, partridge, ...)."""
    folded = name.casefold()
    tiers = (
        lambda entry: entry.names[0] == name,  # 'Cardigan' the corgi (264), 'cardigan' the jacket (474)
        lambda entry: entry.names[0].casefold() == folded,
        lambda entry: name in entry.names,
        lambda entry: any(other.casefold() == folded for other in entry.names),
    )
    for matches_tier in tiers:
        matches = [entry for entry in imagenet_classes() if matches_tier(entry)]
        if matches:
            return matches
    return []


def unknown_class_message(query: str) -> str:
    """Why `query` names no class, with up to MAX_SUGGESTIONS close names (difflib) as 'index · name'."""
    by_name: dict[str, list[tuple[int, str]]] = {}
    for entry in imagenet_classes():
        for name in entry.names:
            by_name.setdefault(name.casefold(), []).append((entry.index, name))
    close = difflib.get_close_matches(query.casefold(), by_name, n=MAX_SUGGESTIONS)
    suggestions = [f"{index} · {name}" for folded in close for index, name in by_name[folded]][:MAX_SUGGESTIONS]
    if suggestions:
        return f"unknown ImageNet class {query!r}; close matches: {', '.join(suggestions)}"
    return (f"unknown ImageNet class {query!r}: give a number 0-{IMAGENET_CLASS_COUNT - 1}, a name such as "
            f"'golden retriever', or a WordNet id such as 'n02099601'")
