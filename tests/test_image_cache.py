"""The training images' cache, through load_images alone: it never hands back pixels the folder no longer holds."""

import cv2
import numpy as np
from helpers import write_blob_faces

from animegan.data import load_images


def load(folder):
    return load_images(folder, 16, 1, show_progress=False)


def test_a_changed_or_added_image_reaches_the_loaded_array(tmp_path):
    folder = write_blob_faces(tmp_path / "face", n=6)
    first = load(folder)
    assert np.array_equal(load(folder), first)  # the second load, from the cache, is the same

    inverted = 255 - first[2, :, :, 0]
    cv2.imwrite(str(folder / "img_0002.png"), inverted)
    changed = load(folder)
    assert np.array_equal(changed[2, :, :, 0], inverted)
    assert np.array_equal(np.delete(changed, 2, axis=0), np.delete(first, 2, axis=0))

    added = np.full((16, 16), 77, np.uint8)
    cv2.imwrite(str(folder / "img_0099.png"), added)  # sorts last
    grown = load(folder)
    assert len(grown) == 7
    assert np.array_equal(grown[:6], changed) and np.array_equal(grown[6, :, :, 0], added)

    (folder / "img_0000.png").unlink()
    assert np.array_equal(load(folder), grown[1:])
