"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images alike,
so the discriminator cannot memorise a small data set, and their strength p, fixed or adapted to how
much the discriminator overfits as in StyleGAN2-ADA (Karras et al. 2020). Images are NHWC in [-1, 1]."""

from __future__ import annotations

import tensorflow as tf

from animegan.config import TrainConfig, augment_ops, augment_probability


def brightness_saturation_contrast(x, rng):
    batch = tf.shape(x)[0]
    x = x + (rng.uniform([batch, 1, 1, 1], dtype=x.dtype) - 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)  # no-op for grayscale, as it should be
    x = (x - mean) * (rng.uniform([batch, 1, 1, 1], dtype=x.dtype) * 2) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (rng.uniform([batch, 1, 1, 1], dtype=x.dtype) + 0.5) + mean


def translation(x, rng, ratio: float = 0.125):
    """Shift each image by up to `ratio` of its size, filling with zeros (mid-gray)."""
    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    pad_h, pad_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = rng.uniform([batch, 1], -pad_h, pad_h + 1, dtype=tf.int32)
    dx = rng.uniform([batch, 1], -pad_w, pad_w + 1, dtype=tf.int32)
    padded = tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    rows = tf.range(height)[None, :] + pad_h + dy
    cols = tf.range(width)[None, :] + pad_w + dx
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def cutout(x, rng, ratio: float = 0.5):
    """Blank one random rectangle of `ratio` x the image size in each image."""
    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = rng.uniform([batch, 1, 1, 1], 0, height + (1 - cut_h % 2), dtype=tf.int32) - cut_h // 2
    left = rng.uniform([batch, 1, 1, 1], 0, width + (1 - cut_w % 2), dtype=tf.int32) - cut_w // 2
    rows = tf.range(height)[None, :, None, None]
    cols = tf.range(width)[None, None, :, None]
    inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
    return x * tf.cast(~inside, x.dtype)


OPS = {"color": brightness_saturation_contrast, "translation": translation, "cutout": cutout}


ORDER = ("color", "translation", "cutout")  # as in the paper


def diff_augment(x, rng, ops: list[str]):
    """Apply every named op to every image."""
    for name in ORDER:
        if name in ops:
            x = OPS[name](x, rng)
    return x


class AdaptiveAugment(tf.Module):
    """The DiffAugment ops of train.augment, each applied to each image with probability p.

    With train.augment_p a number, p stays there. With `auto`, p starts at 0 and follows ADA's
    overfitting heuristic r_t = E[sign(D(real))], the share of real images D calls real minus the
    share it calls fake: every ada_interval steps p moves by batch * interval / (ada_kimg * 1000)
    up when r_t is above ada_target and down when below, within [0, 1]. A discriminator that
    memorises its training images grows sure of every one (r_t -> 1); one that generalises stays
    near the target. Build it in the strategy's scope: its variables are part of the checkpoint,
    so a resume continues p and the half-gathered r_t exactly.
    """

    def __init__(self, cfg: TrainConfig):
        super().__init__(name="augment")
        self.ops = ",".join(augment_ops(cfg.augment))  # a string: tf.Module would wrap a list for tracking
        self.fixed = augment_probability(cfg.augment_p)
        self.target, self.kimg, self.interval = cfg.ada_target, cfg.ada_kimg, cfg.ada_interval
        self.p = tf.Variable(0.0 if self.fixed is None else self.fixed, trainable=False)
        self.rt = tf.Variable(0.0, trainable=False)  # r_t of the last finished interval
        self.sign_sum = tf.Variable(0.0, trainable=False)  # per-step mean signs of the interval so far
        self.sign_steps = tf.Variable(0.0, trainable=False)
        self.recent: list[tuple[int, float]] = []  # (step, r_t) at recent epoch ends, for memorising_warning
        self.warned = False

    def __call__(self, images, rng):
        """Augment one batch (replica context). Reals and fakes each call this, so both see the same distribution."""
        ops = self.ops.split(",") if self.ops else []
        if not ops or self.fixed == 0.0:
            return images
        if self.fixed == 1.0:  # every op on every image: no masks to draw
            return diff_augment(images, rng, ops)
        p = tf.cast(self.p, images.dtype) if self.fixed is None else self.fixed
        for name in ORDER:
            if name in ops:
                chosen = rng.uniform([tf.shape(images)[0], 1, 1, 1], dtype=images.dtype) < p
                images = tf.where(chosen, OPS[name](images, rng), images)
        return images

    def update(self, mean_sign, batch_size: int) -> dict:
        """Add one step's mean sign(D(real)) over the global batch (cross-replica context, as the
        step counter); at the end of each interval, set r_t and move p. Returns the step's stats:
        {"augment_p": p} when there is augmentation to apply."""
        self.sign_sum.assign_add(mean_sign)
        self.sign_steps.assign_add(1.0)
        due = self.sign_steps >= self.interval
        rt = self.sign_sum / self.sign_steps
        if self.fixed is None:
            nudge = tf.sign(rt - self.target) * (batch_size * self.interval / (self.kimg * 1000))
            self.p.assign(tf.where(due, tf.clip_by_value(self.p + nudge, 0.0, 1.0), self.p))
        else:
            self.p.assign(self.fixed)  # a resume may have changed train.augment_p
        self.rt.assign(tf.where(due, rt, self.rt))
        self.sign_sum.assign(tf.where(due, 0.0, self.sign_sum))
        self.sign_steps.assign(tf.where(due, 0.0, self.sign_steps))
        return {"augment_p": tf.identity(self.p)} if self.ops else {}

    def memorising_warning(self, record: dict) -> str | None:
        """memorising_advice() once a run (it does not change from epoch to epoch), for r_t over the
        last MEMORISING_STEPS steps or more, all past the opening steps: an epoch of a small set can be
        two steps, too few to judge D by. `record` is an epoch's metrics (step, epoch, ada_rt, augment_p)."""
        if self.warned or "ada_rt" not in record:
            return None
        self.recent.append((record["step"], record["ada_rt"]))
        while len(self.recent) > 2 and self.recent[-1][0] - self.recent[1][0] >= MEMORISING_STEPS:
            self.recent.pop(0)  # the oldest entry is only where the window starts
        (start, _), end = self.recent[0], self.recent[-1][0]
        if start < OPENING_STEPS or end - start < MEMORISING_STEPS:
            return None
        rt = sum((b - a) * r for (a, _), (b, r) in zip(self.recent, self.recent[1:])) / (end - start)
        warning = memorising_advice(
            self.ops, self.fixed, rt, record.get("augment_p", 0.0), end - start, record["epoch"]
        )
        self.warned = warning is not None
        return warning


SMALL_DATA_SET = 5000  # images: below this a discriminator memorises its training set within a few thousand steps
MEMORISING_RT = 0.9  # r_t above this: D calls nearly every training image real
MEMORISING_STEPS = 100  # judged over at least this many steps
OPENING_STEPS = 500  # and not before: in the first tens of steps any D tells G's noise from faces (r_t near 1)


def small_data_note(cfg: TrainConfig, images: int, batch_size: int) -> str | None:
    """What training does about a small data set, in one line; None for a large one."""
    if images >= SMALL_DATA_SET:
        return None
    ops, p = augment_ops(cfg.augment), augment_probability(cfg.augment_p)
    if not ops or p == 0.0:
        doing = "no augmentation (try --set train.augment=translation,cutout --set train.augment_p=auto)"
    elif p is None:
        doing = f"{'+'.join(ops)} on reals and fakes, strength p adapted to D's overfitting (train.augment_p=auto)"
    else:
        doing = f"{'+'.join(ops)} on reals and fakes at a fixed p={p:g} (--set train.augment_p=auto adapts it)"
    return (
        f"small data set: {images:,} images (under {SMALL_DATA_SET:,}), which a discriminator soon memorises; "
        f"augmentation: {doing}; batch {batch_size}, {images // batch_size} steps per epoch"
    )


def memorising_advice(augment: str, fixed_p: float | None, rt: float, p: float, steps: int, epoch: int) -> str | None:
    """A one-line warning, with what to try, when r_t over the last `steps` steps (to `epoch`) says D
    has memorised the training images and augmentation can do no more about it: off, at a fixed p,
    or auto with p at its ceiling. `augment` and `fixed_p` are train.augment and train.augment_p
    parsed (None for auto); `p` is the strength in use."""
    ops, auto = augment_ops(augment), fixed_p is None
    if rt <= MEMORISING_RT or (ops and auto and p < 0.99):
        return None
    tries = ["more images"]
    if not ops or p == 0.0:
        tries.append("--set train.augment=translation,cutout --set train.augment_p=auto")
    elif p < 0.99:
        tries.append("--set train.augment_p=auto")
    if ops and "color" not in ops:
        tries.append(f"--set train.augment={','.join(ops)},color")
    tries.append("an earlier checkpoint (train.eval_every keeps the best)")
    strength = "augmentation off" if not ops or p == 0.0 else f"augmentation at p={p:.2f}"
    return (
        f"warning: the discriminator is memorising the training images (r_t = E[sign(D(real))] = {rt:.2f} "
        f"over the {steps} steps to epoch {epoch}, {strength}); try {', '.join(tries)}"
    )
