"""Synthetic anime-style faces drawn with OpenCV, so the whole pipeline can be tried without a dataset.

Every face is drawn in "face units": the origin is the middle of the face, x runs right, y runs
down, and the face is 2 units wide (cheeks at x = -1 and 1, chin near y = 1, eyes near y = 0.2).
One 2x3 matrix (the pose) maps face units to pixels, so a single place handles position, size and
tilt. Image i depends only on (seed, i), never on n, so a bigger --n extends a smaller one.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from animegan.errors import UserError
from animegan.files import atomic_path

MIN_SIDE, MAX_SIDE = 96, 512
SHIFT = 4  # cv2 fixed-point bits: 1/16-pixel coordinates keep small shapes smooth

# Base colours (RGB); each face jitters its picks so no two faces share exact colours.
HAIR_COLOURS = [
    (40, 32, 38),
    (95, 60, 40),
    (150, 95, 55),
    (235, 205, 120),
    (215, 85, 45),
    (170, 30, 45),
    (245, 150, 185),
    (80, 120, 220),
    (60, 190, 200),
    (140, 90, 200),
    (90, 170, 90),
    (205, 210, 228),
    (55, 55, 110),
]
EYE_COLOURS = [
    (60, 120, 220),
    (40, 160, 90),
    (200, 40, 50),
    (140, 70, 200),
    (220, 150, 40),
    (120, 70, 40),
    (230, 90, 150),
    (40, 170, 180),
    (230, 200, 60),
]
SKIN_COLOURS = [(255, 230, 215), (252, 216, 192), (240, 200, 170), (225, 180, 145), (190, 140, 105)]
LINE_COLOUR = (45, 30, 35)  # lashes and mouth lines: near-black with a warm tint
MOUTH_COLOUR = (150, 45, 55)
BLUSH_COLOUR = (255, 120, 140)


# Our file names and their temp files: a folder of only these is an earlier demo-data's (a preprocessed set also has
# preprocess.json). A marker file would do too, but preprocess would then report it as a skipped file.
OWN_NAME = re.compile(r"face_\d{5}\.(jpg|png)|\.face_\d{5}\..*\.tmp")


def write_demo_faces(dst: Path, n: int = 2000, seed: int = 0, force: bool = False) -> int:
    """Draw n faces into dst as face_00000.jpg / .png (96-512 px, some non-square); return n. A UserError
    refuses a negative seed, a dst that cannot be created, and (unless `force`) a dst holding other files."""
    if seed < 0:
        raise UserError(f"--seed {seed} is negative; use a seed of 0 or more")
    dst = Path(dst)
    foreign = [] if force or not dst.is_dir() else [p.name for p in dst.iterdir() if not OWN_NAME.fullmatch(p.name)]
    if foreign:
        raise UserError(
            f"'{dst}' holds files demo-data did not write (e.g. '{min(foreign)}'); choose an empty or new folder, "
            "or add --force to draw into it anyway"
        )
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create '{dst}': {exc.strerror}; choose a writable folder") from None
    for index in tqdm(range(n), desc="drawing faces", unit="img"):
        rng = np.random.default_rng([seed, index])
        width, height = _image_size(rng)
        ext, encoded = _encode(rng, draw_face(rng, width, height))
        path = dst / f"face_{index:05d}{ext}"
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded)
    return n


def _encode(rng: np.random.Generator, picture: np.ndarray) -> tuple[str, bytes]:
    """Half JPEG (quality 80-95), half PNG; returns the extension and the file's bytes."""
    if rng.random() < 0.5:
        ext, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(80, 96))]
    else:
        # Level 1 without row filters: flat cartoon colours still compress well, several times faster.
        ext, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {ext} image")
    return ext, encoded.tobytes()


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    """Mostly square sides in [96, 512]; one in five is stretched to an aspect of 0.7-1.4."""
    side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    if rng.random() < 0.8:
        return side, side
    other = int(np.clip(round(side * rng.uniform(0.7, 1.4)), MIN_SIDE, MAX_SIDE))
    return side, other


def draw_face(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One face as an RGB uint8 array of shape (height, width, 3)."""
    image = _background(rng, width, height)
    look = _pick_look(rng)
    pose = _pose(rng, width, height)
    _draw_back_hair(image, pose, rng, look)
    _draw_body(image, pose, rng, look)
    _draw_head(image, pose, rng, look)
    _draw_eyes(image, pose, rng, look)
    _draw_mouth(image, pose, rng)
    _draw_front_hair(image, pose, rng, look)
    _draw_accessory(image, pose, rng, look)
    return image


# --- colours, background and pose -------------------------------------------------------------


def _jitter(rng: np.random.Generator, colour, spread: float = 14) -> np.ndarray:
    return np.clip(np.asarray(colour, dtype=np.float64) + rng.normal(0, spread, 3), 0, 255)


def _shade(colour, factor: float) -> np.ndarray:
    """factor < 1 darkens towards black; factor > 1 lightens towards white."""
    colour = np.asarray(colour, dtype=np.float64)
    return colour * factor if factor <= 1 else colour + (255 - colour) * (factor - 1)


def _mix(a, b, t: float) -> np.ndarray:
    return np.asarray(a, dtype=np.float64) * (1 - t) + np.asarray(b, dtype=np.float64) * t


def _pick_look(rng: np.random.Generator) -> dict:
    """The colours and hairstyle one face keeps throughout."""
    return {
        "skin": _jitter(rng, SKIN_COLOURS[rng.integers(len(SKIN_COLOURS))], 6),
        "hair": _jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 18),
        "eyes": _jitter(rng, EYE_COLOURS[rng.integers(len(EYE_COLOURS))], 18),
        "clothes": rng.uniform(20, 240, 3),
        "style": rng.choice(["short", "long", "twintails"], p=[0.35, 0.5, 0.15]),
    }


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A flat colour or a linear gradient in a random direction, sometimes with polka dots."""
    first = rng.uniform(90, 255, 3)
    second = _jitter(rng, first, 50) if rng.random() < 0.7 else first
    angle = rng.uniform(0, 2 * np.pi)
    # Build the gradient on a small grid and let resize interpolate it: a linear ramp survives
    # bilinear upscaling, and it costs a fraction of computing every pixel.
    small_w, small_h = max(2, width // 8), max(2, height // 8)
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    ramp = xs / small_w * np.cos(angle) + ys / small_h * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    small = first.astype(np.float32) + ramp[..., None] * (second - first).astype(np.float32)
    image = cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        dot = tuple(_shade(first, 1.25).tolist())
        radius = max(2, int(min(width, height) * rng.uniform(0.02, 0.05)))
        step = radius * 4
        for y in range(radius, height, step):
            offset = step // 2 if (y // step) % 2 else 0  # stagger alternate rows
            for x in range(radius + offset, width, step):
                cv2.circle(image, (x, y), radius, dot, -1, cv2.LINE_AA)
    return image


def _pose(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """The face-units-to-pixels matrix: random size, small offset and small tilt."""
    unit = min(width, height) * rng.uniform(0.2, 0.29)  # pixels per face unit
    tilt = np.radians(rng.uniform(-14, 14))
    # The head spans y = -1.4 (crown) to 1.0 (chin); centre that span, then nudge it.
    cx = width / 2 + rng.uniform(-0.08, 0.08) * width
    cy = height / 2 + 0.2 * unit + rng.uniform(-0.06, 0.06) * height
    cos, sin = np.cos(tilt) * unit, np.sin(tilt) * unit
    return np.array([[cos, -sin, cx], [sin, cos, cy]])


# --- drawing primitives in face units ------------------------------------------------------------


def _to_pixels(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    pixels = points @ pose[:, :2].T + pose[:, 2]
    return np.rint(pixels * (1 << SHIFT)).astype(np.int32)


def _fill(image, pose, points, colour) -> None:
    cv2.fillPoly(image, [_to_pixels(pose, points)], tuple(np.asarray(colour).tolist()), cv2.LINE_AA, SHIFT)


def _stroke(image, pose, points, colour, width: float, closed: bool = False) -> None:
    """A line along points, `width` face units thick (at least one pixel)."""
    pixels_per_unit = float(np.hypot(pose[0, 0], pose[1, 0]))
    thickness = max(1, int(round(width * pixels_per_unit)))
    cv2.polylines(
        image, [_to_pixels(pose, points)], closed, tuple(np.asarray(colour).tolist()), thickness, cv2.LINE_AA, SHIFT
    )


@cache
def _steps(count: int) -> np.ndarray:
    """count evenly spaced values from 0 to 1, cached: the same few counts are used thousands of times."""
    return np.linspace(0.0, 1.0, count)


def _ellipse(cx, cy, rx, ry, start=0.0, end=360.0, count=40) -> np.ndarray:
    """Points on an ellipse arc; angles in degrees, 0 = right, 90 = down."""
    t = np.radians(start + (end - start) * _steps(count))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _curve(start, control, end, count=12) -> np.ndarray:
    """A quadratic Bezier curve from start to end, pulled towards control."""
    t = _steps(count)[:, None]
    start, control, end = (np.asarray(p, dtype=np.float64) for p in (start, control, end))
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def _mirror(points: np.ndarray) -> np.ndarray:
    return points * np.array([-1.0, 1.0])


# --- the face, back to front ---------------------------------------------------------------------


def _draw_back_hair(image, pose, rng, look) -> None:
    """Hair behind the head: a rounded mass to the chin or past the shoulders, or twin tails."""
    hair = _shade(look["hair"], 0.8)  # the back is in shadow
    style = look["style"]
    length = rng.uniform(1.3, 2.6) if style == "long" else rng.uniform(0.5, 0.9)
    half_width = rng.uniform(1.2, 1.45)
    crown = _ellipse(0, -0.15, 1.2, 1.28, 180, 360)
    right = _curve((1.2, -0.15), (half_width + 0.1, length * 0.5), (half_width, length))
    # The ragged lower edge: alternating tips and notches from right to left.
    xs = np.linspace(half_width, -half_width, 9)
    ys = np.where(np.arange(9) % 2 == 0, length, length - rng.uniform(0.15, 0.35))
    left = _mirror(right)[::-1]
    _fill(image, pose, np.concatenate([crown, right, np.stack([xs, ys], axis=1), left]), hair)
    if style == "twintails":
        spread, tail_length = rng.uniform(1.5, 2.0), rng.uniform(1.6, 2.8)
        outer = _curve((1.0, -0.9), (spread + 0.4, -0.6), (spread, tail_length), 16)
        inner = _curve((spread - 0.1, tail_length), (spread - 0.35, 0.2), (1.1, -0.55), 16)
        tail = np.concatenate([outer, inner])
        for mirror in (1.0, -1.0):
            side_tail = tail * np.array([mirror, 1.0])
            _fill(image, pose, side_tail, look["hair"])
            _stroke(image, pose, side_tail, _shade(look["hair"], 0.55), 0.025, closed=True)


def _draw_body(image, pose, rng, look) -> None:
    skin_shadow = _shade(look["skin"], 0.85)
    neck = np.array([[-0.26, 0.5], [0.26, 0.5], [0.29, 1.5], [-0.29, 1.5]])
    _fill(image, pose, neck, skin_shadow)
    shoulders = _ellipse(0, 2.05, rng.uniform(1.4, 1.8), 0.7)
    _fill(image, pose, shoulders, look["clothes"])
    _stroke(image, pose, shoulders, _shade(look["clothes"], 0.6), 0.03, closed=True)
    neckline = np.array([[-0.3, 1.35], [0.0, 1.7], [0.3, 1.35]])
    if rng.random() < 0.5:  # a sailor-style collar
        collar = np.array([[-0.75, 1.42], [0.0, 1.95], [0.75, 1.42], [0.3, 1.35], [0.0, 1.7], [-0.3, 1.35]])
        _fill(image, pose, collar, _jitter(rng, (240, 240, 245), 8))
    _fill(image, pose, neckline, skin_shadow)


def _draw_head(image, pose, rng, look) -> None:
    """The face: round on top, cheeks curving in to a small chin, with an outline and blush."""
    skin = look["skin"]
    chin = (0.0, rng.uniform(0.92, 1.1))
    jaw = (rng.uniform(0.85, 1.0), rng.uniform(0.55, 0.8))  # wider and lower = rounder face
    top = _ellipse(0, 0, 1.0, 1.15, 180, 360)
    right_cheek = _curve((1.0, 0.0), jaw, chin)
    outline = np.concatenate([top, right_cheek, _mirror(right_cheek)[::-1]])
    _fill(image, pose, outline, skin)
    _stroke(image, pose, outline, _shade(skin, 0.7), 0.02, closed=True)
    if rng.random() < 0.75:
        blush = _mix(skin, BLUSH_COLOUR, rng.uniform(0.2, 0.45))
        for side in (-1, 1):
            _fill(image, pose, _ellipse(side * 0.58, 0.52, 0.17, 0.07), blush)
            if rng.random() < 0.4:  # the cartoon "///" over the blush
                for k in (-1, 0, 1):
                    x = side * 0.58 + k * 0.07
                    _stroke(image, pose, np.array([[x + 0.03, 0.47], [x - 0.03, 0.57]]), _shade(blush, 0.8), 0.015)
    nose_y = rng.uniform(0.45, 0.55)
    _stroke(image, pose, np.array([[0.0, nose_y], [0.03, nose_y + 0.04]]), _shade(skin, 0.7), 0.02)


def _draw_eyes(image, pose, rng, look) -> None:
    """Two large eyes: white, two-tone iris, pupil, highlights, heavy upper lash and a brow."""
    spacing = rng.uniform(0.38, 0.48)
    eye_y = rng.uniform(0.12, 0.24)
    size = rng.uniform(0.8, 1.2)
    tallness = rng.uniform(0.85, 1.15)  # narrow, almond-like eyes to tall round ones
    iris = look["eyes"]
    closed = rng.random() < 0.08  # happy closed eyes: ^ ^
    brow_tilt = rng.uniform(-0.06, 0.06)  # > 0 frowns, < 0 worries
    # The light comes from one side, so both eyes carry their highlights on the same side.
    light = rng.choice([-1.0, 1.0])
    for side in (-1, 1):
        x = side * spacing
        rx, ry = 0.22 * size, 0.27 * size * tallness
        brow_y = eye_y - ry - 0.12
        brow = _curve(
            (x - side * 0.18, brow_y + brow_tilt), (x, brow_y - 0.06), (x + side * 0.2, brow_y + 0.02 - brow_tilt)
        )
        _stroke(image, pose, brow, _shade(look["hair"], 0.55), 0.035)
        if closed:
            _stroke(image, pose, _ellipse(x, eye_y + 0.1, rx, ry * 0.5, 200, 340, 16), LINE_COLOUR, 0.05)
            continue
        _fill(image, pose, _ellipse(x, eye_y, rx, ry), (248, 248, 252))
        _fill(image, pose, _ellipse(x, eye_y + 0.02 * size, 0.17 * size, 0.245 * size), _shade(iris, 0.5))
        _fill(image, pose, _ellipse(x, eye_y + 0.08 * size, 0.135 * size, 0.16 * size), iris)
        _fill(image, pose, _ellipse(x, eye_y + 0.15 * size, 0.09 * size, 0.06 * size), _shade(iris, 1.4))
        _fill(image, pose, _ellipse(x, eye_y + 0.03 * size, 0.065 * size, 0.11 * size), _shade(iris, 0.2))
        _fill(
            image,
            pose,
            _ellipse(x + light * 0.07 * size, eye_y - 0.07 * size, 0.06 * size, 0.065 * size, count=20),
            (255, 255, 255),
        )
        _fill(
            image,
            pose,
            _ellipse(x - light * 0.06 * size, eye_y + 0.12 * size, 0.03 * size, 0.03 * size, count=12),
            (255, 255, 255),
        )
        # Upper lash: the top arc of the eye, thick, flicking out at the outer corner.
        lash = _ellipse(x, eye_y, rx * 1.05, ry, 190, 350, 20)
        if side > 0:
            lash = lash[::-1]  # run from the inner corner to the outer one on both eyes
        flick = lash[-1] + np.array([side * 0.08, 0.02]) * size
        _stroke(image, pose, np.concatenate([lash, flick[None]]), LINE_COLOUR, 0.065 * size)
        _stroke(image, pose, _ellipse(x, eye_y, rx * 0.8, ry, 60, 120, 8), _shade(look["skin"], 0.55), 0.02)


def _draw_mouth(image, pose, rng) -> None:
    """A smile, an open mouth, a cat mouth or a small 'o'."""
    y = rng.uniform(0.68, 0.78)
    width = rng.uniform(0.07, 0.14)
    kind = rng.choice(["smile", "open", "cat", "o"], p=[0.4, 0.3, 0.2, 0.1])
    if kind == "smile":
        _stroke(image, pose, _ellipse(0, y - 0.05, width, 0.06, 20, 160, 12), MOUTH_COLOUR, 0.025)
    elif kind == "open":
        mouth = _ellipse(0, y - 0.03, width, width * rng.uniform(0.8, 1.2), 0, 180, 20)
        _fill(image, pose, mouth, MOUTH_COLOUR)
        _fill(image, pose, _ellipse(0, y + width * 0.5, width * 0.6, width * 0.3, 180, 360, 12), (235, 120, 130))
    elif kind == "cat":
        for side in (-1, 1):
            _stroke(
                image, pose, _ellipse(side * width * 0.5, y - 0.03, width * 0.5, 0.05, 10, 170, 10), MOUTH_COLOUR, 0.022
            )
    else:
        _fill(image, pose, _ellipse(0, y, width * 0.45, width * 0.55, count=16), MOUTH_COLOUR)


def _draw_front_hair(image, pose, rng, look) -> None:
    """The hair cap with its fringe of pointed bangs and two side locks, its shine, maybe an ahoge."""
    hair = look["hair"]
    cap = _ellipse(0, -0.15, 1.18, 1.27, 180, 360)  # left side, over the crown, to the right side
    lock_length = rng.uniform(0.35, 1.0)
    right_lock = np.concatenate(
        [
            _curve((1.18, -0.15), (1.15, lock_length * 0.6), (rng.uniform(0.95, 1.1), lock_length)),
            _curve((1.0, lock_length * 0.7), (0.9, 0.2), (0.86, -0.1), 8),
        ]
    )
    # Bangs: strands hang from roots along the hairline to pointed tips, drawn right to left.
    # All strands lean the same way by a random amount, which reads as a side parting.
    count = int(rng.integers(4, 8))
    lean = rng.uniform(-0.12, 0.12)
    roots_x = np.linspace(0.86, -0.86, count + 1)
    roots_y = rng.uniform(-0.6, -0.42, count + 1)
    roots_y[[0, -1]] = -0.1  # the outermost roots meet the side locks' inner edges
    fringe = []
    for i in range(count):
        tip = ((roots_x[i] + roots_x[i + 1]) / 2 + lean + rng.uniform(-0.05, 0.05), rng.uniform(-0.25, 0.05))
        bend = lean + rng.uniform(-0.06, 0.06)
        fringe.append(_curve((roots_x[i], roots_y[i]), (roots_x[i] + bend, tip[1] - 0.1), tip, 6))
        fringe.append(_curve(tip, (roots_x[i + 1] + bend, tip[1] - 0.1), (roots_x[i + 1], roots_y[i + 1]), 6))
    left_lock = _mirror(right_lock)[::-1]
    outline = np.concatenate([cap, right_lock, *fringe, left_lock])
    _fill(image, pose, outline, hair)
    _stroke(image, pose, outline, _shade(hair, 0.55), 0.025, closed=True)
    # The "angel ring" shine on the crown, broken into a few short arcs.
    shine, shine_width = _shade(hair, 1.45), rng.uniform(0.04, 0.08)
    for start in np.arange(212, 320, 27) + rng.uniform(-4, 4):
        _stroke(image, pose, _ellipse(0, -0.2, 0.85, 0.75, start, start + 18, 6), shine, shine_width)
    if rng.random() < 0.3:  # an ahoge: the single strand that sticks up
        lean = rng.choice([-1.0, 1.0])
        strand = _curve((0.0, -1.38), (lean * 0.35, -1.75), (lean * 0.05, -1.85), 10)
        _stroke(image, pose, strand, hair, 0.06)


def _draw_accessory(image, pose, rng, look) -> None:
    """Now and then a bow or cat ears, in a colour of their own."""
    roll = rng.random()
    colour = rng.uniform(30, 255, 3)
    if roll < 0.2:
        side = rng.choice([-1.0, 1.0])
        cx, cy = side * 0.8, -0.95
        for wing in (-1, 1):
            loop = np.array([[cx, cy], [cx + wing * 0.35, cy - 0.2], [cx + wing * 0.35, cy + 0.2]])
            _fill(image, pose, loop, colour)
            _stroke(image, pose, loop, _shade(colour, 0.6), 0.02, closed=True)
        _fill(image, pose, _ellipse(cx, cy, 0.08, 0.08, count=12), _shade(colour, 0.8))
    elif roll < 0.3:
        for side in (-1, 1):
            ear = np.array([[side * 0.35, -1.25], [side * 0.95, -1.75], [side * 1.0, -0.85]])
            _fill(image, pose, ear, look["hair"])
            inner = (ear - ear.mean(axis=0)) * 0.55 + ear.mean(axis=0)
            _fill(image, pose, inner, (250, 170, 185))
            _stroke(image, pose, ear, _shade(look["hair"], 0.55), 0.025, closed=True)
