"""The synthetic faces: deterministic per seed, the promised formats and sizes, and real variety."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from animegan.demo_data import MAX_SIDE, MIN_SIDE, write_demo_faces
from animegan.errors import UserError

N = 24  # enough for both formats, a non-square image and a spread of colours; drawn in ~0.1 s


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    """One shared set of N faces (seed 0), so each test does not redraw them."""
    dst = tmp_path_factory.mktemp("faces")
    assert write_demo_faces(dst, n=N, seed=0) == N
    return dst


@pytest.fixture(scope="module")
def pictures(faces_dir) -> list[np.ndarray]:
    return [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in sorted(faces_dir.iterdir())]


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_writes_exactly_n_files_with_numbered_names(faces_dir):
    names = sorted(path.name for path in faces_dir.iterdir())
    assert [Path(name).stem for name in names] == [f"face_{i:05d}" for i in range(N)]
    assert not [name for name in names if name.startswith(".")]  # no temp files left behind


def test_same_seed_gives_identical_files_and_another_seed_does_not(faces_dir, tmp_path):
    write_demo_faces(tmp_path / "again", n=N, seed=0)
    write_demo_faces(tmp_path / "other", n=N, seed=1)
    assert file_bytes(tmp_path / "again") == file_bytes(faces_dir)
    assert file_bytes(tmp_path / "other") != file_bytes(faces_dir)


def test_image_i_does_not_depend_on_n(faces_dir, tmp_path):
    write_demo_faces(tmp_path, n=3, seed=0)
    assert file_bytes(tmp_path) == {name: data for name, data in file_bytes(faces_dir).items() if name < "face_00003"}


def test_mix_of_jpeg_and_png_sizes_within_range(faces_dir, pictures):
    suffixes = {path.suffix for path in faces_dir.iterdir()}
    assert suffixes == {".jpg", ".png"}
    for picture in pictures:
        assert picture is not None and picture.dtype == np.uint8 and picture.shape[2] == 3
        assert MIN_SIDE <= min(picture.shape[:2]) and max(picture.shape[:2]) <= MAX_SIDE
    assert any(p.shape[0] != p.shape[1] for p in pictures)
    assert len({p.shape[:2] for p in pictures}) > N // 2


def test_faces_differ_pixel_by_pixel(pictures):
    stack = np.stack([cv2.resize(p, (32, 32), interpolation=cv2.INTER_AREA) for p in pictures]).astype(np.float32)
    # Standard deviation across images at each pixel: near 0 would mean one template repeated.
    assert stack.std(axis=0).mean() > 30


def test_hair_colours_vary(pictures):
    """The crown of the head sits near the top middle of every picture; its colour is the hair's."""
    crowns = []
    for picture in pictures:
        h, w = picture.shape[:2]
        patch = picture[int(0.3 * h) : int(0.34 * h), int(0.47 * w) : int(0.53 * w)]
        crowns.append(np.median(patch.reshape(-1, 3), axis=0))
    distinct = {tuple(c) for c in (np.array(crowns) // 64).astype(int)}  # 4 levels per channel
    assert len(distinct) >= 8


def test_unwritable_destination_is_a_user_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot create .*a-file"):
        write_demo_faces(blocker / "faces", n=1)


def test_negative_seed_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--seed -1"):
        write_demo_faces(tmp_path, n=1, seed=-1)


def test_a_folder_of_other_files_is_refused_unless_force(tmp_path):
    """A preprocessed demo set has face_00000.png too, but also preprocess.json: not demo-data's folder."""
    (tmp_path / "face_00000.png").write_bytes(b"a preprocessed image")
    (tmp_path / "preprocess.json").write_text("{}")
    with pytest.raises(UserError, match="holds files demo-data did not write .*'preprocess.json'.*--force"):
        write_demo_faces(tmp_path, n=1)
    assert (tmp_path / "face_00000.png").read_bytes() == b"a preprocessed image"
    assert write_demo_faces(tmp_path, n=1, force=True) == 1


def test_an_earlier_demo_data_folder_is_drawn_over(tmp_path):
    earlier, fresh = tmp_path / "earlier", tmp_path / "fresh"
    write_demo_faces(earlier, n=2, seed=1)
    (earlier / ".face_00001.x1y2.png.tmp").write_bytes(b"left by a killed run")
    write_demo_faces(earlier, n=2, seed=0)
    write_demo_faces(fresh, n=2, seed=0)
    drawn = {name: data for name, data in file_bytes(earlier).items() if not name.startswith(".")}
    assert drawn == file_bytes(fresh)


def test_cli_refusal_is_one_line(tmp_path):
    from click.testing import CliRunner

    from animegan.cli import cli

    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo-data", str(tmp_path), "--n", "1"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "notes.txt" in result.stderr
