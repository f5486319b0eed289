"""`animegan preprocess` on a small messy folder: every bad case, naming, dedupe, limit, resume, errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import animegan.convert as convert
from animegan.cli import cli
from animegan.config import load_config
from animegan.demo_data import write_demo_faces
from animegan.errors import UserError
from animegan.preprocess import JOURNAL_NAME, REPORT_NAME, run_preprocess

ROOT = Path(__file__).resolve().parent.parent
ANIME_CASCADE = (
    ROOT.parent / "shared" / "models" / "lbpcascade_animeface.xml"
)  # where this project keeps it; never in the repo


def config(**overrides):
    """The default config (56x56 grayscale, centre crop, dedupe) run in-process unless told otherwise."""
    return load_config(None, {"preprocess.workers": 1, **overrides})


def noise(seed: int, size=(80, 64), mode="RGB") -> Image.Image:
    channels = 3 if mode == "RGB" else 1
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(), mode=None)


def make_messy_folder(src: Path) -> Path:
    """18 files: 13 that make an image, 1 byte-identical copy, 4 that cannot."""
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "copy").mkdir()
    (src / "日本").mkdir()
    noise(1, (96, 64)).save(src / "a.jpg", quality=90)  # not square
    noise(2).save(src / "b.png")
    (src / "copy" / "b.png").write_bytes((src / "b.png").read_bytes())
    noise(3).save(src / "sub" / "c.jpg")
    noise(4).save(src / "sub" / "deeper" / "d.bmp")
    noise(5).save(src / "e.webp", lossless=True)
    noise(6).save(src / "f.tif")
    noise(7).save(src / "ñandú face.png")
    noise(8).save(src / "日本" / "顔 1.jpg")
    noise(9).convert("CMYK").save(src / "cmyk.jpg")
    Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16)).save(src / "gray16.png")
    noise(10).convert("P").save(src / "palette.png")
    Image.fromarray(np.dstack([np.asarray(noise(11)), np.full((64, 80), 128, np.uint8)])).save(src / "rgba.png")
    noise(12).save(src / "anim.gif", save_all=True, append_images=[noise(13)], duration=100, loop=0)
    (src / "corrupt.jpg").write_bytes(b"not a jpeg at all" * 50)
    whole = (src / "a.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (src / "empty.png").write_bytes(b"")
    (src / "notes.txt").write_text("scraped from somewhere")
    return src


@pytest.fixture
def messy(tmp_path) -> Path:
    return make_messy_folder(tmp_path / "anime")


def outputs(dst: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dst.iterdir()) if p.suffix == ".png"}


def without_timing(report: dict) -> dict:
    return {key: value for key, value in report.items() if key != "last_run"}


def test_messy_folder_counts_report_and_outputs(messy, tmp_path, capsys):
    dst = tmp_path / "face"
    report = run_preprocess(messy, dst, config(), show_progress=False)

    counts = report["counts"]
    assert counts["files"] == 18
    assert counts["written"] == 13
    assert counts["duplicates"] == 1
    assert counts["skipped_by_reason"] == {"cannot decode": 2, "empty file": 1, "unsupported file type": 1}
    assert report == json.loads((dst / REPORT_NAME).read_text(encoding="utf-8"))
    assert report["settings"]["size"] == 56 and report["settings"]["channels"] == 1
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert skipped == {
        "corrupt.jpg": "cannot decode",
        "truncated.jpg": "cannot decode",
        "empty.png": "empty file",
        "notes.txt": "unsupported file type",
    }
    assert "truncated" in next(s["detail"] for s in report["skipped"] if s["file"] == "truncated.jpg")
    assert report["duplicates"] == [{"file": "copy/b.png", "same_as": "b.png"}]

    written = outputs(dst)
    assert set(written) == {
        "a.png",
        "anim.png",
        "b.png",
        "cmyk.png",
        "e.png",
        "f.png",
        "gray16.png",
        "palette.png",
        "rgba.png",
        "sub__c.png",
        "sub__deeper__d.png",
        "ñandú face.png",
        "日本__顔 1.png",
    }
    for name in written:
        with Image.open(dst / name) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "L", (56, 56))
    assert not list(dst.glob(".*")), "no temp files left behind"
    summary = capsys.readouterr().out
    assert "13 images" in summary and "1 duplicates" in summary and "2 cannot decode" in summary


def test_color_and_size_flags_give_rgb(messy, tmp_path):
    dst = tmp_path / "face"
    run_preprocess(messy, dst, config(**{"data.channels": 3, "data.size": 32}), show_progress=False)
    for name in outputs(dst):
        with Image.open(dst / name) as image:
            assert (image.mode, image.size) == ("RGB", (32, 32))


def pixel_digest(folder: Path) -> str:
    """One digest of every output's name, mode, size and pixels (not its PNG bytes)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            digest.update(f"{path.name}\0{image.mode}\0{image.size}\0".encode())
            digest.update(image.tobytes())
    return digest.hexdigest()[:32]


# The pixels main's code wrote (commit a8d2360, before preprocess was made cheaper per image), taken
# with this test's own pixel_digest from run_preprocess at that commit, with Pillow 13.0.0 and OpenCV
# 5.0.0 (which draws and encodes the demo faces). Faster encoding must not change a single pixel.
PIXELS_BEFORE = {
    "56 grey crop": ({}, "d95166cb505b7ff5ee36f3e2b479d9f6"),
    "32 RGB pad": ({"data.channels": 3, "data.size": 32, "preprocess.fit": "pad"}, "9aaa32d087f20b2ea2cba996f828b100"),
    "28 grey stretch": ({"data.size": 28, "preprocess.fit": "stretch"}, "17c0942f6238465ac90dd757a8b4eb96"),
}


@pytest.mark.parametrize("overrides, expected", PIXELS_BEFORE.values(), ids=PIXELS_BEFORE.keys())
def test_output_pixels_are_the_same_as_before(tmp_path, overrides, expected):
    src = tmp_path / "src"
    write_demo_faces(src / "demo", n=24, seed=0)  # JPEGs and PNGs of 96-512 px, some not square: reduced decoding
    make_messy_folder(src / "messy")  # every pixel format
    run_preprocess(src, tmp_path / "out", config(**overrides), show_progress=False)
    assert pixel_digest(tmp_path / "out") == expected
    for path in (tmp_path / "out").glob("*.png"):
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # with libpng, as data.py reads them
        with Image.open(path) as image:
            assert np.array_equal(decoded if decoded.ndim == 2 else decoded[..., ::-1], np.asarray(image)), path.name


def test_pixel_formats_are_converted_correctly(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    Image.fromarray(np.full((20, 20), 128 * 257, dtype=np.uint16)).save(src / "16bit.png")  # 16-bit mid-grey
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(src / "clear.png")  # invisible red: white
    Image.new("RGBA", (20, 20), (0, 0, 0, 128)).save(src / "half.png")  # half-transparent black: mid-grey
    Image.new("RGB", (20, 20), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(src / "palette.png")
    frames = [Image.new("L", (20, 20), 0), Image.new("L", (20, 20), 255)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.new("CMYK", (20, 20), (0, 0, 0, 64)).save(src / "cmyk.jpg", quality=95)
    run_preprocess(src, dst, config(**{"data.size": 16}), show_progress=False)

    def grey(name):
        low, high = Image.open(dst / name).getextrema()
        assert high - low <= 1, name
        return low

    assert grey("16bit.png") == 128  # scaled, not clipped to 255
    assert grey("clear.png") == 255
    assert abs(grey("half.png") - 127) <= 1
    assert grey("palette.png") == Image.new("RGB", (1, 1), (10, 200, 30)).convert("L").getpixel((0, 0))
    assert grey("anim.png") == 0  # the first frame
    assert abs(grey("cmyk.png") - Image.open(src / "cmyk.jpg").convert("L").getpixel((10, 10))) <= 2


@pytest.mark.parametrize(
    "fit, expected",
    [
        ("crop", {"left": 128, "top_middle": 128}),  # the grey centre only
        ("pad", {"left": 0, "top_middle": 255}),  # white bars above and below
        ("stretch", {"left": 0, "top_middle": 128}),  # everything, squashed
    ],
)
def test_fit_modes(tmp_path, fit, expected):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    wide = np.full((50, 100), 128, np.uint8)  # black | grey | white, 100x50
    wide[:, :25], wide[:, 75:] = 0, 255
    Image.fromarray(wide).save(src / "wide.png")
    run_preprocess(src, dst, config(**{"data.size": 16, "preprocess.fit": fit}), show_progress=False)
    out = np.asarray(Image.open(dst / "wide.png"))
    assert out[8, 0] == expected["left"]
    assert out[0, 8] == expected["top_middle"]


def test_downscaling_averages_instead_of_aliasing(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    checkerboard = (np.indices((512, 512)).sum(axis=0) % 2 * 255).astype(np.uint8)
    Image.fromarray(checkerboard).save(src / "fine.png")
    run_preprocess(src, dst, config(), show_progress=False)
    low, high = Image.open(dst / "fine.png").getextrema()
    assert 120 <= low <= high <= 135  # nearest-neighbour would give 0s and 255s


def test_flattened_names_never_collide(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    for i, name in enumerate(["a/b.jpg", "a__b.png", "x.jpg", "x.png", "Y.png", "y.bmp"]):
        noise(i).save(src / name)
    run_preprocess(src, dst, config(), show_progress=False)
    assert set(outputs(dst)) == {"a__b.png", "a__b~2.png", "x.png", "x~2.png", "Y.png", "y~2.png"}


def test_limit_keeps_the_first_images_in_source_order(messy, tmp_path):
    dst = tmp_path / "face"
    report = run_preprocess(messy, dst, config(**{"data.limit": 3}), show_progress=False)
    assert set(outputs(dst)) == {"a.png", "anim.png", "b.png"}
    assert report["counts"]["limit_reached"]


def test_keep_duplicates(messy, tmp_path):
    dst = tmp_path / "face"
    report = run_preprocess(messy, dst, config(**{"preprocess.dedupe": False}), show_progress=False)
    assert report["counts"]["duplicates"] == 0
    assert outputs(dst)["copy__b.png"] == outputs(dst)["b.png"]


def test_same_output_with_one_or_two_workers(messy, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    report_one = run_preprocess(messy, one, config(), show_progress=False)
    report_two = run_preprocess(messy, two, config(**{"preprocess.workers": 2}), show_progress=False)
    assert report_two["last_run"]["workers"] == 2
    assert outputs(one) == outputs(two)
    assert without_timing(report_one) == without_timing(report_two)


def test_rerun_skips_what_is_done(messy, tmp_path):
    dst = tmp_path / "face"
    first = run_preprocess(messy, dst, config(), show_progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in dst.glob("*.png")}
    second = run_preprocess(messy, dst, config(), show_progress=False)
    assert second["last_run"]["read"] == 0
    assert without_timing(second) == without_timing(first)
    assert {p.name: p.stat().st_mtime_ns for p in dst.glob("*.png")} == mtimes


def test_interrupted_run_leaves_no_partial_file_and_resumes_to_the_same_result(messy, tmp_path, monkeypatch):
    uninterrupted = tmp_path / "whole"
    run_preprocess(messy, uninterrupted, config(), show_progress=False)

    dst = tmp_path / "face"
    real_write = convert.write_temp_png
    calls = []

    def write_then_ctrl_c(picture, folder):
        calls.append(picture)
        if len(calls) == 6:  # half a PNG on disk, then Ctrl-C
            Path(folder, ".0-999.png.tmp").write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
        return real_write(picture, folder)

    monkeypatch.setattr(convert, "write_temp_png", write_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_preprocess(messy, dst, config(), show_progress=False)
    monkeypatch.undo()

    partial = outputs(dst)
    assert 0 < len(partial) < len(outputs(uninterrupted))
    assert not list(dst.glob(".*")), "the interrupted run removed its temp files"
    for name in partial:
        Image.open(dst / name).load()  # every image under a final name is complete

    # A run killed outright (no clean-up) leaves a temp file and half a journal line; both are harmless.
    (dst / ".1-2.png.tmp").write_bytes(b"\x89PNG half")
    with open(dst / JOURNAL_NAME, "a", encoding="utf-8") as journal:
        journal.write('{"file": "sub/c.j')

    report = run_preprocess(messy, dst, config(), show_progress=False)
    assert 0 < report["last_run"]["read"] < 18
    assert outputs(dst) == outputs(uninterrupted)
    assert without_timing(report) == without_timing(
        json.loads((uninterrupted / REPORT_NAME).read_text(encoding="utf-8"))
    )
    assert not list(dst.glob(".*"))


def test_changed_settings_need_overwrite_which_redoes_everything(messy, tmp_path):
    dst = tmp_path / "face"
    run_preprocess(messy, dst, config(), show_progress=False)
    result = CliRunner().invoke(cli, ["preprocess", str(messy), str(dst), "--size", "32", "--workers", "1", "--quiet"])
    assert result.exit_code == 2
    assert "size=56, not 32" in result.output and "--overwrite" in result.output

    report = run_preprocess(
        messy, dst, config(**{"data.size": 32, "data.limit": 2}), overwrite=True, show_progress=False
    )
    assert report["last_run"]["read"] == 2
    assert set(outputs(dst)) == {"a.png", "anim.png"}  # the old 56-px images are gone
    assert Image.open(dst / "a.png").size == (32, 32)


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(cli, ["preprocess", *args, "--workers", "1", "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_cli_errors_are_one_line(messy, tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("x")
    dst = str(tmp_path / "face")

    assert "not found" in one_line_error([str(tmp_path / "missing"), dst])
    assert "no images" in one_line_error([str(tmp_path / "texts"), dst])
    assert "inside source folder" in one_line_error([str(messy), str(messy / "sub" / "out")])
    assert "inside source folder" in one_line_error([str(messy), str(messy)])
    assert "cannot write" in one_line_error([str(messy), str(tmp_path / "a-file" / "face")])
    assert "data.size" in one_line_error([str(messy), dst, "--size", "50"])
    assert "cascade" in one_line_error([str(messy), dst, "--crop-faces"])
    assert "not found" in one_line_error([str(messy), dst, "--crop-faces", "--cascade", str(tmp_path / "nope.xml")])
    assert "not an OpenCV cascade" in one_line_error(
        [str(messy), dst, "--crop-faces", "--cascade", str(tmp_path / "a-file")]
    )
    (tmp_path / "empty.xml").write_text("<?xml version='1.0'?>\n<opencv_storage></opencv_storage>\n")
    assert "not an OpenCV cascade" in one_line_error(
        [str(messy), dst, "--crop-faces", "--cascade", str(tmp_path / "empty.xml")]
    )


def test_command_with_a_pool_never_imports_tensorflow(messy, tmp_path):
    script = (
        "import sys\n"
        "from animegan.cli import cli\n"
        f"cli.main(['preprocess', {str(messy)!r}, {str(tmp_path / 'face')!r}, '--workers', '2'], "
        "standalone_mode=False)\n"
        "assert 'tensorflow' not in sys.modules, 'preprocess imported TensorFlow'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "13 images" in done.stdout
    assert "preprocess" in done.stderr  # the progress bar


@pytest.mark.skipif(
    not ANIME_CASCADE.is_file(), reason="needs lbpcascade_animeface.xml, which users download themselves"
)
def test_crop_faces_with_the_anime_cascade(messy, tmp_path):
    # Noise holds no faces: every decodable file is skipped, which exercises the whole face path.
    dst = tmp_path / "faces"
    with pytest.raises(UserError, match="none of the 18 files .* gave an image .*14 no face found"):
        run_preprocess(
            messy,
            dst,
            config(**{"preprocess.crop_faces": True, "preprocess.cascade": str(ANIME_CASCADE)}),
            show_progress=False,
        )
    report = json.loads((dst / REPORT_NAME).read_text(encoding="utf-8"))
    assert report["counts"]["written"] == 0
    assert report["counts"]["skipped_by_reason"]["no face found"] == 14


def test_a_folder_that_gives_no_image_is_a_one_line_error(tmp_path):
    """Issue 18, item 12: a folder of files none of which decodes exited 0 with 0 images written."""
    src = tmp_path / "broken"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"not a jpeg")
    (src / "b.png").write_bytes(b"")
    line = one_line_error([str(src), str(tmp_path / "face")])
    assert f"'{src}'" in line and "gave an image" in line and "1 cannot decode, 1 empty file" in line


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_an_edited_or_deleted_source_is_redone_as_a_fresh_run_would(messy, tmp_path, change):
    """Issue 18, item 12: the journal was keyed by name alone, so a rerun never noticed either."""
    dst = tmp_path / "face"
    run_preprocess(messy, dst, config(), show_progress=False)
    if change == "edit":
        noise(99).save(messy / "b.png")  # b.png had a copy in copy/b.png: now both are kept
    else:
        (messy / "b.png").unlink()  # its copy is no longer a duplicate
    report = run_preprocess(messy, dst, config(), show_progress=False)
    fresh = run_preprocess(messy, tmp_path / "fresh", config(), show_progress=False)
    assert outputs(dst) == outputs(tmp_path / "fresh")
    assert without_timing(report) | {"source": ""} == without_timing(fresh) | {"source": ""}
    assert report["duplicates"] == []
    assert ("b.png" in outputs(dst)) == (change == "edit")
    assert 0 < report["last_run"]["read"] < 18  # the files before b.png were not done again
    assert run_preprocess(messy, dst, config(), show_progress=False)["last_run"]["read"] == 0


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_file_names_that_are_not_utf8(tmp_path):
    """Issue 18, item 8: a source named with byte 0xff made preprocess die writing preprocess.json, on every rerun."""
    src = tmp_path / "odd"
    src.mkdir()
    noise(1).save(os.fsdecode(bytes(src) + b"/a\xffb.jpg"), format="JPEG")
    Path(os.fsdecode(bytes(src) + b"/c\xff.jpg")).write_bytes(b"not a jpeg")
    dst = tmp_path / "face"
    for _ in range(2):
        result = CliRunner().invoke(cli, ["preprocess", str(src), str(dst), "--workers", "1", "--quiet"])
        assert result.exit_code == 0, result.output
    report = json.loads((dst / REPORT_NAME).read_bytes().decode("utf-8"))  # plain UTF-8 JSON
    assert [entry["file"] for entry in report["skipped"]] == ["c\\xff.jpg"]
    assert list(outputs(dst)) == ["a\ufffdb.png"]  # an output name any tool can read
    assert "\\xff" in result.output or "preprocess.json" in result.output


def test_orphaned_pool_workers_exit_quietly(tmp_path):
    """Issue 18, item 12: after a kill -9 of preprocess, its workers printed BrokenPipeError tracebacks."""
    files = [str(tmp_path / f"{i}.png") for i in range(400)]
    script = (
        "import sys, time\n"
        "import animegan.convert as convert\n"
        "def slow(settings, dst, path):\n"
        "    time.sleep(0.01)\n"
        "    return convert.Converted([], [], 'slow')\n"
        "convert.convert_file = slow\n"
        f"with convert.converted_files({files!r}, None, {str(tmp_path)!r}, 2) as results:\n"
        "    for result in results:\n"
        "        print('working', flush=True)\n"
        "        time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "working\n"
    child.kill()  # the workers are busy with their next chunks
    child.wait()
    stderr = child.stderr.read()  # returns once every worker, which shares the pipe, has exited
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
