"""The ImageNet class list: the order BigGAN's class vector uses, and class_index's parsing and error messages."""
import dataclasses

import pytest

from sagan_viz.imagenet_classes import IMAGENET_CLASS_COUNT, ClassName, class_index, imagenet_classes, parse_class_line


def test_every_index_has_the_wordnet_id_pytorch_pretrained_biggan_gives_it():
    # An independent source: the package's own table, WordNet offset -> class index.
    from pytorch_pretrained_biggan.utils import IMAGENET

    classes = imagenet_classes()
    assert len(classes) == IMAGENET_CLASS_COUNT == len(IMAGENET)
    assert {int(entry.wnid[1:]): entry.index for entry in classes} == IMAGENET
    assert [entry.index for entry in classes] == list(range(IMAGENET_CLASS_COUNT))


@pytest.mark.parametrize("index, wnid, first_name", [
    (0, "n01440764", "tench"),
    (1, "n01443537", "goldfish"),
    (207, "n02099601", "golden retriever"),
    (281, "n02123045", "tabby"),
    (999, "n15075141", "toilet tissue"),
])
def test_known_classes_sit_at_their_ilsvrc_2012_index(index, wnid, first_name):
    entry = imagenet_classes()[index]
    assert (entry.index, entry.wnid, entry.names[0]) == (index, wnid, first_name)


def test_a_class_keeps_all_its_wordnet_names_and_labels_with_the_first():
    tench = imagenet_classes()[0]
    assert tench.names == ("tench", "Tinca tinca")
    assert imagenet_classes()[207].label == "207 · golden retriever"
    assert imagenet_classes()[999].names == ("toilet tissue", "toilet paper", "bathroom tissue")


def test_class_names_are_frozen_and_read_once():
    assert imagenet_classes() is imagenet_classes()
    with pytest.raises(dataclasses.FrozenInstanceError):
        imagenet_classes()[0].index = 5


def test_every_name_is_trimmed_and_non_empty():
    for entry in imagenet_classes():
        assert entry.names and all(name and name == name.strip() for name in entry.names), entry


def test_a_malformed_data_line_names_its_line_number():
    with pytest.raises(ValueError, match=r"line 3: expected 'WNID<TAB>name, \.\.\.'"):
        parse_class_line(2, "n01440764 tench, Tinca tinca")  # a space, not a tab
    assert parse_class_line(0, "n01440764\ttench, Tinca tinca") == ClassName(0, "n01440764", ("tench", "Tinca tinca"))


@pytest.mark.parametrize("text, index", [
    ("207", 207),
    (" 207 ", 207),
    ("0", 0),
    ("999", 999),
    ("golden retriever", 207),
    ("Golden Retriever", 207),
    ("GOLDEN RETRIEVER", 207),
    ("n02099601", 207),
    ("207 · golden retriever", 207),
    ("tabby cat", 281),  # a second name
    ("Tinca tinca", 0),
    ("toilet paper", 999),
])
def test_class_index_accepts_numbers_names_in_any_case_wordnet_ids_and_labels(text, index):
    assert class_index(text) == index


def test_a_first_name_wins_over_the_same_word_as_another_class_synonym():
    assert class_index("partridge") == 86  # 82 is "ruffed grouse, partridge, Bonasa umbellus"
    assert class_index("Cardigan") == 264  # the corgi; exact case decides
    assert class_index("cardigan") == 474  # the jacket


def test_an_ambiguous_name_lists_the_classes_it_could_mean():
    with pytest.raises(ValueError) as error:
        class_index("crane")  # the bird (134) and the machine (517)
    message = str(error.value)
    assert "'crane' names 2 ImageNet classes" in message
    assert "134 · crane (n02012849)" in message and "517 · crane (n03126707)" in message
    assert "give the number" in message
    with pytest.raises(ValueError, match="264 · Cardigan .* 474 · cardigan"):
        class_index("CARDIGAN")


def test_a_misspelled_name_suggests_up_to_five_close_matches():
    with pytest.raises(ValueError) as error:
        class_index("golden retreiver")
    message = str(error.value)
    assert message.startswith("unknown ImageNet class 'golden retreiver'; close matches: 207 · golden retriever")
    assert 1 <= len(message.split("close matches: ")[1].split(", ")) <= 5


def test_text_like_no_class_says_what_is_accepted():
    with pytest.raises(ValueError, match="unknown ImageNet class 'xyzzy': give a number 0-999, a name such as"):
        class_index("xyzzy")
    with pytest.raises(ValueError, match="no ImageNet class given"):
        class_index("  ")


@pytest.mark.parametrize("text, message", [
    ("1000", "ImageNet class 1000 is out of range: the classes are 0-999"),
    ("-1", "ImageNet class -1 is out of range"),
    ("n00000000", "WordNet id n00000000 is not one of the 1000 ImageNet classes"),
    ("207 · tabby", "'207 · tabby' does not match the class list: 207 is 'golden retriever'"),
])
def test_out_of_range_numbers_foreign_wordnet_ids_and_stale_labels_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        class_index(text)
