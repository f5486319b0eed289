"""Metrics: the maths against direct computations, SWD's ordering, evaluate_run's cache and its errors.

Nothing is downloaded: Inception is built here with random weights, at its smallest input (75 px).
"""

import cv2
import numpy as np
import pytest
import scipy.linalg
from click.testing import CliRunner

from animegan.checkpoints import load_generator
from animegan.cli import cli
from animegan.data import load_images
from animegan.errors import UserError
from animegan.metrics import diversity, evaluate, evaluate_generator, evaluate_run, inception, prdc, swd
from animegan.metrics.evaluate import CACHE_DIR, compute_real_features
from animegan.metricslog import read_metrics


def drawn_faces(count, size, seed):
    """Grayscale pictures with structure at several scales: a disc, a bar and a few dots on a soft background."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 1), dtype=np.uint8)
    for image in images:
        canvas = np.full((size, size), rng.integers(60, 120), dtype=np.uint8)
        centre = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        cv2.circle(canvas, centre, int(rng.integers(size // 8, size // 3)), int(rng.integers(150, 255)), -1)
        cv2.line(
            canvas,
            tuple(int(v) for v in rng.integers(0, size, 2)),
            tuple(int(v) for v in rng.integers(0, size, 2)),
            20,
            1,
        )
        for _ in range(3):
            canvas[tuple(rng.integers(0, size, 2))] = 255
        image[..., 0] = canvas
    return images


@pytest.fixture
def real_folder(tmp_path):
    """16x16 grayscale PNGs, like `animegan preprocess` writes for the fake_run config."""
    folder = tmp_path / "face"
    folder.mkdir()
    for i, image in enumerate(drawn_faces(12, 16, seed=0)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def random_inception():
    """InceptionV3 with random weights at its smallest input: the pipeline of the real one, without a download."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None, input_shape=(75, 75, 3))


def scipy_frechet_distance(mean1, cov1, mean2, cov2):
    """The textbook formula, with scipy's general matrix square root."""
    return (
        np.sum((mean1 - mean2) ** 2)
        + np.trace(cov1)
        + np.trace(cov2)
        - 2 * np.trace(scipy.linalg.sqrtm(cov1 @ cov2)).real
    )


@pytest.mark.parametrize("rank2", [6, 2], ids=["full-rank", "singular"])
def test_frechet_distance_matches_scipy_on_known_gaussians(rank2):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 6)), rng.standard_normal((6, rank2))
    mean1, cov1, mean2, cov2 = rng.standard_normal(6), a @ a.T, rng.standard_normal(6), b @ b.T
    assert inception.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(
        scipy_frechet_distance(mean1, cov1, mean2, cov2), rel=1e-6
    )
    assert inception.symmetric_sqrt(cov1) == pytest.approx(scipy.linalg.sqrtm(cov1).real, abs=1e-8)


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    variances1, variances2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 1.0 + np.sum((np.sqrt(variances1) - np.sqrt(variances2)) ** 2)  # means differ by 1 in one axis
    got = inception.frechet_distance(np.zeros(3), np.diag(variances1), np.array([0.0, 1.0, 0.0]), np.diag(variances2))
    assert got == pytest.approx(expected)


def test_fid_in_the_spanned_subspace_equals_the_full_computation():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((9, 40)), rng.standard_normal((7, 40)) + 0.3
    full = inception.frechet_distance(*inception.mean_and_covariance(real), *inception.mean_and_covariance(fake))
    assert inception.fid_score({"pool": real}, {"pool": fake})["fid"] == pytest.approx(full, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero(random_inception):
    features = inception.inception_features(random_inception, drawn_faces(8, 16, seed=0))
    other = inception.inception_features(random_inception, drawn_faces(8, 16, seed=1))
    assert features["pool"].shape == (8, 2048)
    apart = inception.fid_score(features, other)["fid"]
    assert apart > 0
    assert abs(inception.fid_score(features, features)["fid"]) < 1e-6 * apart


def test_kid_is_unbiased_for_two_draws_of_one_distribution():
    rng = np.random.default_rng(3)
    draws = [
        inception.kernel_inception_distance(rng.standard_normal((20, 8)), rng.standard_normal((20, 8)))
        for _ in range(300)
    ]
    standard_error = np.std(draws) / np.sqrt(len(draws))
    assert abs(np.mean(draws)) < 3 * standard_error
    # Keeping the self-pairs (the biased estimate) would be caught: it sits well above 0.
    x, y = rng.standard_normal((20, 8)), rng.standard_normal((20, 8))
    biased = (inception.kernel_sum(x, x) + inception.kernel_sum(y, y)) / 400 - 2 * inception.kernel_sum(x, y) / 400
    assert biased > 10 * standard_error
    shifted = inception.kernel_inception_distance(rng.standard_normal((20, 8)), rng.standard_normal((20, 8)) + 1)
    assert shifted > 10 * standard_error


def test_laplacian_pyramid_matches_opencv_and_sums_back_to_the_images():
    images = drawn_faces(3, 32, seed=0).astype(np.float32)
    assert swd.pyramid_down(images)[0, ..., 0] == pytest.approx(cv2.pyrDown(images[0, ..., 0]), abs=1e-4)
    fine, coarse = swd.laplacian_pyramid(images, 2)
    assert fine + swd.pyramid_up(coarse) == pytest.approx(images, abs=1e-3)
    assert swd.pyramid_resolutions(56) == [56, 28]
    assert swd.pyramid_resolutions(64) == [64, 32, 16]


def test_swd_with_every_quantile_is_the_papers_formula():
    """Karras et al.'s code sorts both sets' projections and averages the absolute differences."""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 49)).astype(np.float32), rng.standard_normal((300, 49)).astype(np.float32) * 1.5
    directions = swd.random_directions(49)
    paper = np.mean(np.abs(np.sort(a @ directions, axis=0) - np.sort(b @ directions, axis=0)))
    ours = np.mean(
        np.abs(
            swd.projection_quantiles(a, directions, quantiles=300)
            - swd.projection_quantiles(b, directions, quantiles=300)
        )
    )
    assert ours == pytest.approx(paper, rel=1e-5)


def test_swd_orders_identical_same_distribution_blurred_noise():
    real = swd.swd_features(drawn_faces(64, 32, seed=0))

    def distance(images):
        return swd.swd_scores(real, swd.swd_features(images))["swd"]

    blurred = np.stack([cv2.GaussianBlur(image, (5, 5), 1.5)[..., None] for image in drawn_faces(64, 32, seed=0)])
    noise = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 1), dtype=np.uint8)
    identical, same_kind = distance(drawn_faces(64, 32, seed=0)), distance(drawn_faces(64, 32, seed=1))
    assert identical == 0
    assert same_kind < distance(blurred) < distance(noise)
    assert set(swd.swd_scores(real, real)) == {"swd", "swd_32", "swd_16"}


def test_evaluate_run_logs_the_epoch_and_caches_the_real_features(fake_run, real_folder, monkeypatch):
    results = evaluate_run(run_dir=fake_run, real=real_folder, n=8, metric_names="swd")
    assert set(results) == {"swd", "swd_16"} and results["swd"] > 0
    line = read_metrics(fake_run)[-1]
    assert line["epoch"] == 1 and line["event"] == "evaluate" and line["n"] == 8 and line["swd"] == results["swd"]
    assert len(list((real_folder / CACHE_DIR).glob("swd-*.npz"))) == 1
    assert (fake_run / "quality.png").is_file()  # redrawn with the new score

    def no_reading(*args, **kwargs):
        raise AssertionError("the real images were read again despite the cache")

    monkeypatch.setattr(evaluate, "load_images", no_reading)
    assert evaluate_run(run_dir=fake_run, real=real_folder, n=8, metric_names="swd") == results
    with pytest.raises(AssertionError, match="read again"):  # another n is another set of real images
        evaluate_run(run_dir=fake_run, real=real_folder, n=9, metric_names="swd")


def test_evaluate_checkpoint_scores_and_logs_that_epoch(three_checkpoint_run, real_folder):
    scores = {
        epoch: evaluate_run(run_dir=three_checkpoint_run, real=real_folder, n=8, metric_names="swd", checkpoint=epoch)
        for epoch in ("1", "2")
    }
    assert scores["1"] != scores["2"]
    assert [(r["epoch"], r["swd"]) for r in read_metrics(three_checkpoint_run)] == [
        (1, scores["1"]["swd"]),
        (2, scores["2"]["swd"]),
    ]


def test_a_read_only_data_folder_only_costs_the_cache(fake_run, real_folder, monkeypatch, capsys):
    def refuse(path):
        raise UserError(f"cannot write '{path}': Read-only file system; choose a writable location")

    monkeypatch.setattr(evaluate, "atomic_path", refuse)
    assert "swd" in evaluate_run(run_dir=fake_run, real=real_folder, n=8, metric_names="swd")
    assert "warning: not caching the real-image features: cannot write" in capsys.readouterr().err


def test_changed_real_images_invalidate_the_cache(fake_run, real_folder):
    evaluate_run(run_dir=fake_run, real=real_folder, n=8, metric_names="swd")
    cv2.imwrite(str(real_folder / "00000.png"), np.zeros((16, 16), np.uint8))
    evaluate_run(run_dir=fake_run, real=real_folder, n=8, metric_names="swd")
    assert len(list((real_folder / CACHE_DIR).glob("swd-*.npz"))) == 2


def test_a_damaged_cache_is_recomputed(fake_run, real_folder):
    first = evaluate_run(run_dir=fake_run, real=real_folder, n=8, metric_names="swd")
    (cache,) = (real_folder / CACHE_DIR).glob("swd-*.npz")
    cache.write_bytes(b"not a zip")
    assert evaluate_run(run_dir=fake_run, real=real_folder, n=8, metric_names="swd") == first


def test_fid_and_kid_share_one_inception_pass_and_its_cache(fake_run, real_folder, random_inception):
    results = evaluate_run(
        run_dir=fake_run, real=real_folder, n=8, metric_names="fid,kid,swd", inception_model=random_inception
    )
    assert set(results) == {"fid", "kid", "swd", "swd_16"}
    assert all(np.isfinite(value) for value in results.values())
    assert len(list((real_folder / CACHE_DIR).glob("inception-*.npz"))) == 1


def test_evaluate_generator_writes_nothing_and_reuses_real_features(fake_run, real_folder, tmp_path):
    generator, _, _ = load_generator(fake_run)
    real_images = load_images(real_folder, 16, 1, limit=12)
    before = sorted(tmp_path.rglob("*"))
    results = evaluate_generator(generator, real_images, "swd", n=8, seed=0)
    assert sorted(tmp_path.rglob("*")) == before
    real_features = compute_real_features(real_images, ["swd"], n=8)
    assert evaluate_generator(generator, real_images, ["swd"], n=8, seed=0, real_features=real_features) == results


def test_cli_evaluate_prints_each_metric(fake_run, real_folder):
    result = CliRunner().invoke(cli, ["evaluate", str(fake_run), "--real", str(real_folder), "--n", "8"])
    assert result.exit_code == 0, result.output
    assert "swd: " in result.output and "swd_16: " in result.output
    # The default metrics separate fidelity from variety.
    assert all(f"{key}: " in result.output for key in ("precision", "recall", "density", "coverage", "near_duplicates"))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--metrics", "swd,is"], "unknown metric 'is' in --metrics"),
        (["--real", "nowhere"], "'nowhere' does not exist"),
    ],
)
def test_cli_errors_are_one_line(fake_run, real_folder, arguments, message):
    result = CliRunner().invoke(cli, ["evaluate", str(fake_run), "--real", str(real_folder), "--n", "8", *arguments])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output


def test_wrong_or_too_few_real_images_are_refused(fake_run, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), np.zeros((32, 32), np.uint8))
    with pytest.raises(UserError, match=r"a.png' is 32x32 grayscale but the config wants 16x16.*--size 16"):
        evaluate_run(run_dir=fake_run, real=folder, n=8, metric_names="swd")
    (folder / "b.png").unlink()
    with pytest.raises(UserError, match="holds a single image"):
        evaluate_run(run_dir=fake_run, real=folder, n=8, metric_names="fid")
    (folder / "a.png").unlink()
    with pytest.raises(UserError, match="holds no images"):
        evaluate_run(run_dir=fake_run, real=folder, n=8, metric_names="swd")


def test_no_weights_and_no_network_says_to_pass_inception_weights(monkeypatch):
    monkeypatch.setattr(inception, "WEIGHTS_FILE", "animegan-test-never-cached.h5")
    monkeypatch.setattr(
        inception, "WEIGHTS_URL", "http://127.0.0.1:9/inception.h5"
    )  # the discard port: refused at once
    with pytest.raises(UserError, match="--inception-weights FILE"):
        inception.load_inception()


def test_bad_inception_weights_files_are_named(tmp_path):
    with pytest.raises(UserError, match="missing.h5' does not exist"):
        inception.load_inception(tmp_path / "missing.h5")
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="bogus.h5' is not Keras' InceptionV3"):
        inception.load_inception(bogus)


def write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    return folder


def test_prdc_is_about_one_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    real, fake = {"vectors": rng.standard_normal((1000, 8))}, {"vectors": rng.standard_normal((1000, 8))}
    scores = prdc.prdc_scores(real, fake)
    assert scores["density"] == pytest.approx(1.0, abs=0.15)
    assert scores["coverage"] > 0.9
    assert scores["precision"] > 0.7 and scores["recall"] > 0.7


def test_prdc_separates_fidelity_from_diversity():
    rng = np.random.default_rng(0)
    real = {"vectors": rng.standard_normal((1000, 8))}
    collapsed = prdc.prdc_scores(real, {"vectors": 0.05 * rng.standard_normal((1000, 8))})  # all near one real mode
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.1
    far = prdc.prdc_scores(real, {"vectors": rng.standard_normal((1000, 8)) + 10})  # varied, but nothing like the real
    assert far["precision"] == 0 and far["coverage"] == 0


def test_prdc_matches_a_direct_count_on_a_tiny_set():
    real = {"vectors": np.array([[0.0], [1.0], [3.0], [7.0]])}
    fake = {"vectors": np.array([[0.5], [6.0], [20.0]])}
    scores = prdc.prdc_scores(real, fake, k=1)
    # Standardised by the real mean 2.75 and std ~2.59, which keeps every ordering; by hand in raw units:
    # real radii 1, 1, 2, 4; fake radii 5.5, 5.5, 14. Fake 0.5 is in balls of 0 and 1; 6 is in 7's; 20 in none.
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["density"] == pytest.approx(3 / 3)
    assert scores["coverage"] == pytest.approx(3 / 4)  # 3 has no fake within its radius 2
    assert scores["recall"] == pytest.approx(1.0)  # every real lies within 5.5 of 0.5 or 6, or 14 of 20


def test_random_network_features_are_the_same_on_every_recreation():
    """prdc and fd compare runs only in one feature space: the network must come out the same each time."""
    from animegan.metrics import embedding

    # The first kernel values, pinned: numpy's seeded generator gives them on every machine and process.
    np.testing.assert_allclose(embedding.network_weights(1)[0].ravel()[:3], [0.0485394, -0.4622249, -0.3853630], 1e-6)
    np.testing.assert_allclose(embedding.network_weights(3)[0].ravel()[:3], [-0.0762754, 0.1405466, 0.1680118], 1e-6)
    images = drawn_faces(12, 16, seed=0)
    first, again = embedding.embedding_features(images), embedding.embedding_features(images.copy())
    np.testing.assert_array_equal(first["vectors"], again["vectors"])  # built anew, traced anew: the same numbers
    assert first["vectors"].shape == (12, 2 * sum(embedding.WIDTHS) + 4 * 256) and first["vectors"].std() > 0


def whole_matrix(a, b):
    """All pairwise Euclidean distances at once, by broadcasting: the reference for the metrics' blocks."""
    return np.sqrt(((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(axis=-1))


def prdc_from_whole_matrices(real, fake, k):
    """prdc_scores as computed before it went in blocks: from full (N, N) matrices."""
    mean, std = real.mean(axis=0), real.std(axis=0) + 1e-6
    real, fake = (real - mean) / std, (fake - mean) / std
    radii = {}
    for name, features in (("real", real), ("fake", fake)):
        own = whole_matrix(features, features)
        np.fill_diagonal(own, np.inf)
        radii[name] = np.sort(own, axis=1)[:, k - 1]
    between = whole_matrix(real, fake)
    inside = between < radii["real"][:, None]
    return {
        "precision": inside.any(axis=0).mean(),
        "recall": (between < radii["fake"][None, :]).any(axis=1).mean(),
        "density": inside.sum(axis=0).mean() / k,
        "coverage": (between.min(axis=1) < radii["real"]).mean(),
    }


@pytest.mark.parametrize("block_elements", [1, 40, 1 << 22])  # one row per block, a few rows, the whole matrix
def test_metrics_computed_in_blocks_equal_the_whole_matrix_computation(monkeypatch, block_elements):
    monkeypatch.setattr(prdc, "BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((23, 6)), rng.standard_normal((17, 6)) + 0.3
    assert prdc.prdc_scores({"vectors": real}, {"vectors": fake}, k=3) == pytest.approx(
        prdc_from_whole_matrices(real, fake, k=3)
    )

    images = rng.integers(0, 256, (19, 4, 4, 1), dtype=np.uint8)
    pixels = images.reshape(19, -1) / 255.0
    rms = whole_matrix(pixels, pixels) / 4  # sqrt of 16 pixels
    summary = diversity.pixel_summary(images)
    assert summary["spread"] == pytest.approx(rms.sum() / (19 * 18), rel=1e-6)
    np.fill_diagonal(rms, np.inf)
    np.testing.assert_allclose(summary["nn"], rms.min(axis=1), rtol=1e-5)
    np.testing.assert_allclose(diversity.nearest_distances(images[:5], images[5:]), rms[:5, 5:].min(axis=1), rtol=1e-5)


def test_diversity_flags_near_duplicates_and_spread():
    real = drawn_faces(200, 16, seed=0)
    same = diversity.diversity_scores(
        diversity.pixel_summary(real), diversity.pixel_summary(drawn_faces(200, 16, seed=1))
    )
    assert same["near_duplicates"] < 0.05 and 0.8 < same["nn_ratio"] < 1.25 and 0.9 < same["spread_ratio"] < 1.1
    few = real[np.arange(200) % 10]  # 10 faces, 20 copies each
    collapsed = diversity.diversity_scores(diversity.pixel_summary(real), diversity.pixel_summary(few))
    assert collapsed["near_duplicates"] == 1.0 and collapsed["nn_ratio"] < 1e-3


@pytest.fixture(scope="module")
def face_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    real = write_pngs(root / "real", drawn_faces(300, 32, seed=0))
    other = write_pngs(root / "other", drawn_faces(300, 32, seed=1))
    copies = write_pngs(root / "copies", np.repeat(drawn_faces(1, 48, seed=2), 300, axis=0))  # another size: resized
    return real, other, copies


def test_evaluate_images_scores_a_folder_from_any_tool(face_folders):
    real, other, copies = face_folders
    runner = CliRunner()

    def scores(folder):
        result = runner.invoke(cli, ["evaluate", "--images", str(folder), "--real", str(real), "--n", "300"])
        assert result.exit_code == 0, result.output
        return {line.split(": ")[0]: float(line.split(": ")[1]) for line in result.stdout.splitlines() if ": " in line}

    same, collapsed = scores(other), scores(copies)
    assert same["coverage"] > 0.9 and same["recall"] > 0.6 and same["near_duplicates"] < 0.05
    assert collapsed["coverage"] < 0.05 and collapsed["recall"] < 0.05 and collapsed["near_duplicates"] == 1.0
    assert collapsed["swd"] > same["swd"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--images", "IMAGES"], "--images needs --real"),
        (["--images", "IMAGES", "--real", "REAL", "--checkpoint", "3"], "leave out RUN_DIR and --checkpoint"),
    ],
)
def test_evaluate_images_usage_errors(face_folders, arguments, message):
    real, other, _ = face_folders
    arguments = [{"IMAGES": str(other), "REAL": str(real)}.get(a, a) for a in arguments]
    result = CliRunner().invoke(cli, ["evaluate", *arguments])
    assert result.exit_code == 2 and message in result.output


def test_evaluate_images_names_an_unreadable_file(face_folders, tmp_path):
    real = face_folders[0]
    images = write_pngs(tmp_path / "images", drawn_faces(3, 16, seed=0))
    (images / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(cli, ["evaluate", "--images", str(images), "--real", str(real)])
    assert result.exit_code == 2 and "broken.png" in result.output and "Traceback" not in result.output
