"""Print the labelled images USB 0.3.2's own ImageNet loader chooses (run beside USB's package).

    python tests/parity/usb_draw_imagenet.py 5,7,6 6 0      # images per class, num_labels, seed

Makes a temporary ``train/`` of empty ``.jpg`` files (class ``c<k>``, names ``0000.jpg`` ...
in each, so sorted order is numeric order), seeds Python's generator with ``seed`` as USB's
``train.py`` does, builds USB's ``ImagenetDataset`` twice as its ``get_imagenet`` does (the
whole training set, then the labelled one with ``percentage = num_labels / len``) and
prints the labelled files' positions in each class's sorted order, class by class in
USB's order. USB lists files in ``os.listdir`` order, which the file system decides: here
that listing is sorted first, the order this project shuffles (semilearn/data/imagenet.py).
``tests/test_imagenet.py`` holds the printed lists. Only listing runs: no image is read.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from usb_generate import import_usb  # noqa: E402


def main() -> None:
    counts = [int(count) for count in sys.argv[1].split(",")]
    num_labels, seed = int(sys.argv[2]), int(sys.argv[3])
    import_usb()
    from semilearn.datasets.cv_datasets import imagenet as usb_imagenet

    def find_classes(self: object, directory: str) -> tuple[list[str], dict[str, int]]:  # torchvision's, as it is
        classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
        return classes, {name: index for index, name in enumerate(classes)}

    walk = os.walk  # USB's module calls os.walk: the one module os, patched for the run and restored

    def sorted_walk(top: str, **kwargs: object):  # type: ignore[no-untyped-def]
        for root, folders, names in walk(top, **kwargs):  # type: ignore[call-overload]
            yield root, folders, sorted(names)

    usb_imagenet.ImagenetDataset.find_classes = find_classes
    os.walk = sorted_walk
    try:
        with tempfile.TemporaryDirectory() as folder:
            train = Path(folder) / "train"
            for label, count in enumerate(counts):
                (train / f"c{label}").mkdir(parents=True)
                for index in range(count):
                    (train / f"c{label}" / f"{index:04d}.jpg").touch()
            random.seed(seed)
            everything = usb_imagenet.ImagenetDataset(root=str(train), transform=None, ulb=False, alg="fixmatch")
            labelled = usb_imagenet.ImagenetDataset(root=str(train), transform=None, ulb=False, alg="fixmatch",
                                                    percentage=num_labels / len(everything))
            chosen: list[list[int]] = [[] for _ in counts]
            for path in labelled.data:
                chosen[int(Path(path).parent.name[1:])].append(int(Path(path).stem))
    finally:
        os.walk = walk
    print(chosen)


if __name__ == "__main__":
    main()
