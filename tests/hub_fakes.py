"""Tiny copies of the paper's Hub datasets with each Hub copy's real schema: column names, feature types,
split names and ClassLabel names as the Hub spells them (typos included), plus a stand-in for
``datasets.load_dataset`` that serves them the way the Hub does (one split, streamed, optional column
projection). Where a schema fact could not be read from a public copy in this project it is said so.
"""

from __future__ import annotations

import io

import datasets
from PIL import Image

from segp_hf.data.protocol_assets import protocol, rapf_imagenet_r_split


def _png(value=0):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, 100, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def image(path=None):
    return {"bytes": PNG, "path": path}


# uoft-cs/cifar100 README dataset_info (seen at aadb3af): fine_label 26 is spelt 'cra'.
CIFAR100_HUB_FINE = [("cra" if n == "crab" else n) for n in protocol("cifar100")["class_names"]]
CIFAR100_HUB_COARSE = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
]

# ILSVRC/imagenet-1k label names, classes 0-99 (WordNet synset lemmas, as in the Hub repo's classes.py);
# classes 100-999 are stand-ins here ('hub class N'): the loaders use ImageNet-1k's label ids, not its names.
IMAGENET_HUB_0_99 = [
    "tench, Tinca tinca", "goldfish, Carassius auratus",
    "great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias",
    "tiger shark, Galeocerdo cuvieri", "hammerhead, hammerhead shark", "electric ray, crampfish, numbfish, torpedo",
    "stingray", "cock", "hen", "ostrich, Struthio camelus", "brambling, Fringilla montifringilla",
    "goldfinch, Carduelis carduelis", "house finch, linnet, Carpodacus mexicanus", "junco, snowbird",
    "indigo bunting, indigo finch, indigo bird, Passerina cyanea", "robin, American robin, Turdus migratorius",
    "bulbul", "jay", "magpie", "chickadee", "water ouzel, dipper", "kite",
    "bald eagle, American eagle, Haliaeetus leucocephalus", "vulture", "great grey owl, great gray owl, Strix nebulosa",
    "European fire salamander, Salamandra salamandra", "common newt, Triturus vulgaris", "eft",
    "spotted salamander, Ambystoma maculatum", "axolotl, mud puppy, Ambystoma mexicanum",
    "bullfrog, Rana catesbeiana", "tree frog, tree-frog", "tailed frog, bell toad, ribbed toad, tailed toad, Ascaphus trui",
    "loggerhead, loggerhead turtle, Caretta caretta",
    "leatherback turtle, leatherback, leathery turtle, Dermochelys coriacea", "mud turtle", "terrapin",
    "box turtle, box tortoise", "banded gecko", "common iguana, iguana, Iguana iguana",
    "American chameleon, anole, Anolis carolinensis", "whiptail, whiptail lizard", "agama",
    "frilled lizard, Chlamydosaurus kingi", "alligator lizard", "Gila monster, Heloderma suspectum",
    "green lizard, Lacerta viridis", "African chameleon, Chamaeleo chamaeleon",
    "Komodo dragon, Komodo lizard, dragon lizard, giant lizard, Varanus komodoensis",
    "African crocodile, Nile crocodile, Crocodylus niloticus", "American alligator, Alligator mississipiensis",
    "triceratops", "thunder snake, worm snake, Carphophis amoenus", "ringneck snake, ring-necked snake, ring snake",
    "hognose snake, puff adder, sand viper", "green snake, grass snake", "king snake, kingsnake",
    "garter snake, grass snake", "water snake", "vine snake", "night snake, Hypsiglena torquata",
    "boa constrictor, Constrictor constrictor", "rock python, rock snake, Python sebae", "Indian cobra, Naja naja",
    "green mamba", "sea snake", "horned viper, cerastes, sand viper, horned asp, Cerastes cornutus",
    "diamondback, diamondback rattlesnake, Crotalus adamanteus", "sidewinder, horned rattlesnake, Crotalus cerastes",
    "trilobite", "harvestman, daddy longlegs, Phalangium opilio", "scorpion",
    "black and gold garden spider, Argiope aurantia", "barn spider, Araneus cavaticus",
    "garden spider, Aranea diademata", "black widow, Latrodectus mactans", "tarantula", "wolf spider, hunting spider",
    "tick", "centipede", "black grouse", "ptarmigan", "ruffed grouse, partridge, Bonasa umbellus",
    "prairie chicken, prairie grouse, prairie fowl", "peacock", "quail", "partridge",
    "African grey, African gray, Psittacus erithacus", "macaw",
    "sulphur-crested cockatoo, Kakatoe galerita, Cacatua galerita", "lorikeet", "coucal", "bee eater", "hornbill",
    "hummingbird", "jacamar", "toucan", "drake", "red-breasted merganser, Mergus serrator", "goose",
]
assert len(IMAGENET_HUB_0_99) == 100
IMAGENET_HUB_NAMES = IMAGENET_HUB_0_99 + [f"hub class {i}" for i in range(100, 1000)]

# ethz/food101 README dataset_info
FOOD101_HUB = (
    "apple_pie baby_back_ribs baklava beef_carpaccio beef_tartare beet_salad beignets bibimbap bread_pudding "
    "breakfast_burrito bruschetta caesar_salad cannoli caprese_salad carrot_cake ceviche cheesecake cheese_plate "
    "chicken_curry chicken_quesadilla chicken_wings chocolate_cake chocolate_mousse churros clam_chowder "
    "club_sandwich crab_cakes creme_brulee croque_madame cup_cakes deviled_eggs donuts dumplings edamame "
    "eggs_benedict escargots falafel filet_mignon fish_and_chips foie_gras french_fries french_onion_soup "
    "french_toast fried_calamari fried_rice frozen_yogurt garlic_bread gnocchi greek_salad grilled_cheese_sandwich "
    "grilled_salmon guacamole gyoza hamburger hot_and_sour_soup hot_dog huevos_rancheros hummus ice_cream lasagna "
    "lobster_bisque lobster_roll_sandwich macaroni_and_cheese macarons miso_soup mussels nachos omelette onion_rings "
    "oysters pad_thai paella pancakes panna_cotta peking_duck pho pizza pork_chop poutine prime_rib "
    "pulled_pork_sandwich ramen ravioli red_velvet_cake risotto samosa sashimi scallops seaweed_salad "
    "shrimp_and_grits spaghetti_bolognese spaghetti_carbonara spring_rolls steak strawberry_shortcake sushi tacos "
    "takoyaki tiramisu tuna_tartare waffles"
).split()

# timm/oxford-iiit-pet: label names not read from a public copy here (the loader takes them from the feature).
PETS_NAMES = [f"pet breed {i}" for i in range(37)]


def ucf_hub_names():
    """flwrlabs/ucf101's ClassLabel: the 101 UCF101 classInd names, CamelCase ('ApplyEyeMakeup' first)."""
    camel = [n.replace(" ", "") for n in protocol("ucf101")["class_names"]]
    camel = ["HandstandPushups" if n == "HandStandPushups" else n for n in camel]
    return sorted(camel + ["YoYo"])


def _dataset(rows, features):
    return datasets.Dataset.from_dict(rows, features=features)


def fake_cifar100(train_per_class=2, test_per_class=1, drop_test_class=None):
    """uoft-cs/cifar100: img (Image), fine_label (ClassLabel 100, 'cra'), coarse_label (ClassLabel 20); train/test."""
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=CIFAR100_HUB_FINE),
                                  "coarse_label": datasets.ClassLabel(names=CIFAR100_HUB_COARSE)})

    def split(per_class, drop=None):
        labels = [c for c in range(100) for _ in range(per_class) if c != drop]
        return _dataset({"img": [image() for _ in labels], "fine_label": labels,
                         "coarse_label": [c % 20 for c in labels]}, features)

    return datasets.DatasetDict(train=split(train_per_class), test=split(test_per_class, drop_test_class))


def rapf_rows(per_class_train=2, per_class_test=1):
    """A few real (wnid/file, side) entries of RAPF's list per class."""
    chosen = {}
    for key, side in rapf_imagenet_r_split().items():
        wnid = key.split("/")[0]
        sides = chosen.setdefault(wnid, {"train": [], "test": []})
        if len(sides[side]) < (per_class_train if side == "train" else per_class_test):
            sides[side].append(key)
    return chosen


def fake_imagenet_r(with_paths=True):
    """axiong/imagenet-r: image (Image), wnid (string), class_name (string); one split 'test'."""
    info = protocol("imagenet_r")
    chosen = rapf_rows()
    rows = {"image": [], "wnid": [], "class_name": []}
    for wnid, name in zip(info["wnids"], info["class_names"]):
        for key in chosen[wnid]["test"] + chosen[wnid]["train"]:
            rows["image"].append(image(f"imagenet-r/{key}" if with_paths else None))
            rows["wnid"].append(wnid)
            rows["class_name"].append(name.lower())
    features = datasets.Features({"image": datasets.Image(), "wnid": datasets.Value("string"),
                                  "class_name": datasets.Value("string")})
    return datasets.DatasetDict(test=_dataset(rows, features))


def fake_imagenet1k(train_per_class=2, val_per_class=1, classes=range(106)):
    """ILSVRC/imagenet-1k: image (Image), label (ClassLabel 1000); train/validation/test (test labels -1)."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=IMAGENET_HUB_NAMES)})

    def split(labels):
        return _dataset({"image": [image() for _ in labels], "label": labels}, features)

    return datasets.DatasetDict(
        train=split([c for c in classes for _ in range(train_per_class)]),
        validation=split([c for c in classes for _ in range(val_per_class)]), test=split([-1, -1]))


def fake_cub200():
    """bentrevett/caltech-ucsd-birds-200-2011: image (Image), label (ClassLabel '001.Black_footed_Albatross'),
    bbox (4 floats); train/test."""
    names = [f"{i + 1:03d}.{n}" for i, n in enumerate(protocol("cub200")["class_names"])]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names),
                                  "bbox": datasets.Sequence(datasets.Value("float32"), length=4)})

    def split(per_class):
        labels = [c for c in range(200) for _ in range(per_class)]
        return _dataset({"image": [image() for _ in labels], "label": labels,
                         "bbox": [[0.0, 0.0, 4.0, 4.0]] * len(labels)}, features)

    return datasets.DatasetDict(train=split(2), test=split(1))


def fake_ucf101(reverse_labels=False, ids_without_names=False):
    """flwrlabs/ucf101: image (Image), video_id (string), clip_id (string), frame (int64), label (ClassLabel
    101, CamelCase); train/test; several frames per clip, rows not in frame order. ``ids_without_names``:
    every class uses the same ids ('v_g01', 'c01'), so clips are told apart by their label alone."""
    names = ucf_hub_names()
    if reverse_labels:
        names = names[::-1]
    features = datasets.Features({"image": datasets.Image(), "video_id": datasets.Value("string"),
                                  "clip_id": datasets.Value("string"), "frame": datasets.Value("int64"),
                                  "label": datasets.ClassLabel(names=names)})

    def split(clips, frames):
        rows = {k: [] for k in features}
        for label, name in enumerate(names):
            stem = "HandStandPushups" if name == "HandstandPushups" else name  # UCF101's own ids spell it so
            for clip in range(clips):
                for frame in reversed(frames):
                    rows["image"].append(image())
                    rows["video_id"].append(f"v_g0{clip}" if ids_without_names else f"v_{stem}_g0{clip}")
                    rows["clip_id"].append("c01" if ids_without_names else f"v_{stem}_g0{clip}_c01")
                    rows["frame"].append(frame)
                    rows["label"].append(label)
        return _dataset(rows, features)

    return datasets.DatasetDict(train=split(2, [0, 10, 20]), test=split(1, [0, 5, 10, 15]))


def fake_food101():
    """ethz/food101: image (Image), label (ClassLabel 101 'apple_pie'...); train/validation."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FOOD101_HUB)})
    labels = list(range(101))
    split = _dataset({"image": [image() for _ in labels], "label": labels}, features)
    return datasets.DatasetDict(train=split, validation=split)


def fake_oxford_pets():
    """timm/oxford-iiit-pet: image (Image), label (ClassLabel 37), image_id (string), label_cat_dog (ClassLabel 2);
    train/test (schema as the existing note says; not re-read from the Hub here)."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=PETS_NAMES),
                                  "image_id": datasets.Value("string"),
                                  "label_cat_dog": datasets.ClassLabel(names=["cat", "dog"])})
    labels = list(range(37))
    split = _dataset({"image": [image() for _ in labels], "label": labels, "image_id": [f"img_{i}" for i in labels],
                      "label_cat_dog": [i % 2 for i in labels]}, features)
    return datasets.DatasetDict(train=split, test=split)


FAKES = {
    "uoft-cs/cifar100": fake_cifar100,
    "axiong/imagenet-r": fake_imagenet_r,
    "ILSVRC/imagenet-1k": fake_imagenet1k,
    "bentrevett/caltech-ucsd-birds-200-2011": fake_cub200,
    "flwrlabs/ucf101": fake_ucf101,
    "ethz/food101": fake_food101,
    "timm/oxford-iiit-pet": fake_oxford_pets,
}

# the Hub copy each paper benchmark reads
BENCHMARK_HUB_ID = {"cifar100": "uoft-cs/cifar100", "imagenet_r": "axiong/imagenet-r",
                    "imagenet_sub": "ILSVRC/imagenet-1k", "cub200": "bentrevett/caltech-ucsd-birds-200-2011",
                    "ucf101": "flwrlabs/ucf101"}


def fake_load_dataset(served: dict, calls: list):
    """``datasets.load_dataset`` as the Hub answers it: ``split=`` gives one split, ``streaming=True`` an
    IterableDataset, ``columns=`` a column projection. ``calls`` records (id, revision, split, columns)."""

    def load_dataset(path, name=None, revision=None, split=None, streaming=False, columns=None, **kwargs):
        calls.append((path, revision, split, tuple(columns) if columns else None))
        if path not in served:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")
        copy = served[path]
        if split is None:
            return copy
        if split not in copy:
            raise ValueError(f"Unknown split {split!r}. Should be one of {list(copy)}.")
        part = copy[split]
        if columns:
            part = part.select_columns(list(columns))
        return part.to_iterable_dataset() if streaming else part

    return load_dataset
