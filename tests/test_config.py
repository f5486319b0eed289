"""Config loading: the shipped files, the override layers and every validation error."""

import re
from dataclasses import asdict

import pytest
import yaml

from animegan.config import Config, flatten, load_config
from animegan.configfile import CONFIG_DIR, resolve_config_path
from animegan.errors import UserError


def write_yaml(tmp_path, text: str, name: str = "custom.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args, **kwargs) -> str:
    """The UserError message load_config raises; it must fit on one line."""
    with pytest.raises(UserError) as caught:
        load_config(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the shipped configs ----------------------------------------------------------------------


def test_default_yaml_spells_out_exactly_the_dataclass_defaults():
    data = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text(encoding="utf-8"))
    expected = Config().to_dict()
    del expected["name"]  # the name comes from the file's stem, not from a key
    assert data == expected
    assert load_config(CONFIG_DIR / "default.yaml") == Config()


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_is_named_after_its_file(path):
    assert load_config(path).name == path.stem
    assert load_config(path.stem).name == path.stem  # a bare name finds it in configs/


def test_no_file_means_the_defaults():
    assert load_config(None) == Config()


# --- override layers ----------------------------------------------------------------------------


def test_set_overrides_parse_yaml_values():
    cfg = load_config(
        None, sets=("train.g_lr=1e-4", "data.size=64", "model.d_widths=[32, 64]", "train.name=null", "name=mine")
    )
    assert cfg.train.g_lr == 1e-4
    assert cfg.data.size == 64
    assert cfg.model.d_widths == [32, 64]
    assert cfg.train.name is None
    assert cfg.name == "mine"


def test_set_value_may_contain_an_equals_sign_and_be_empty():
    assert load_config(None, sets=("data.dir=a=b",)).data.dir == "a=b"
    assert load_config(None, sets=("train.augment=",)).train.augment == ""


def test_stage_flags_override_and_none_means_not_given():
    cfg = load_config(None, {"data.size": 64, "train.epochs": None, "preprocess.dedupe": False})
    assert cfg.data.size == 64
    assert cfg.train.epochs == Config().train.epochs
    assert cfg.preprocess.dedupe is False


def test_precedence_is_file_then_flags_then_set():
    assert load_config("demo").data.size == 32
    assert load_config("demo", {"data.size": 64}).data.size == 64
    assert load_config("demo", {"data.size": 64}, ("data.size=128",)).data.size == 128
    # Keys no layer touches keep the file's value, then the default.
    cfg = load_config("demo", {"data.size": 64}, ("data.size=128",))
    demo_file = yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text())
    assert cfg.train.epochs == demo_file["train"]["epochs"] and cfg.train.beta1 == Config().train.beta1


def test_config_file_overrides_only_what_it_lists(tmp_path):
    cfg = load_config(write_yaml(tmp_path, "train:\n  epochs: 7\n"))
    assert cfg.train.epochs == 7
    assert cfg.name == "custom"
    assert cfg.data == Config().data


def test_empty_file_gives_the_defaults(tmp_path):
    assert load_config(write_yaml(tmp_path, "# nothing yet\n")).to_dict() == {**Config().to_dict(), "name": "custom"}


# --- errors: keys and types ----------------------------------------------------------------------


def test_unknown_key_in_a_file_names_the_file_and_the_closest_key(tmp_path):
    path = write_yaml(tmp_path, "train:\n  g_lrr: 0.001\n")
    message = config_error(path)
    assert str(path) in message
    assert "'train.g_lrr'" in message and "did you mean 'train.g_lr'" in message


def test_unknown_section_suggests_the_right_one():
    message = config_error(None, sets=("trian.epochs=3",))
    assert message.startswith("--set:") and "did you mean 'train.epochs'" in message


def test_key_without_section_suggests_the_full_key():
    assert "did you mean 'train.epochs'" in config_error(None, sets=("epochs=3",))


@pytest.mark.parametrize(
    "item, expected",
    [
        ("train.epochs=many", "'train.epochs' must be an integer; got 'many'"),
        ("train.g_lr=fast", "'train.g_lr' must be a number; got 'fast'"),
        ("preprocess.dedupe=maybe", "'preprocess.dedupe' must be true or false; got 'maybe'"),
        ("data.dir=true", "'data.dir' must be a string; got True"),
        ("model.d_widths=abc", "'model.d_widths' must be a list of integers"),
    ],
)
def test_wrong_type(item, expected):
    assert expected in config_error(None, sets=(item,))


def test_wrong_type_in_a_file_names_the_file(tmp_path):
    path = write_yaml(tmp_path, "data:\n  size: big\n")
    assert config_error(path) == f"{path}: 'data.size' must be an integer; got 'big'"


def test_set_without_equals_sign():
    assert "needs the form section.key=value" in config_error(None, sets=("train.epochs",))


# --- errors: values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item, expected",
    [
        ("data.size=600", "'data.size' is 600; allowed: 16 to 512"),
        ("data.limit=-1", "'data.limit' is -1; allowed: >= 0"),
        ("train.g_lr=2.0", "'train.g_lr' is 2.0; allowed: 0.0 to 1.0"),
        ("train.g_lr=nan", "'train.g_lr' is nan; allowed: 0.0 to 1.0"),
        ("model.d_dropout=.nan", "'model.d_dropout' is nan"),
    ],
)
def test_out_of_range(item, expected):
    assert expected in config_error(None, sets=(item,))


@pytest.mark.parametrize(
    "item, expected",
    [
        (
            "train.precision=fp8",
            "'train.precision' is 'fp8'; choose one of auto, float32, mixed_float16, mixed_bfloat16",
        ),
        ("preprocess.fit=squash", "'preprocess.fit' is 'squash'; choose one of crop, pad, stretch"),
        ("data.channels=2", "'data.channels' is 2; choose one of 1, 3"),
    ],
)
def test_bad_choice(item, expected):
    assert expected in config_error(None, sets=(item,))


def test_unbuildable_size_lists_the_valid_sizes():
    message = config_error(None, sets=("data.size=100",))
    assert "'data.size' 100" in message
    assert "valid sizes include" in message and "56, 64" in message and "128" in message


def test_unknown_augment_op_lists_the_known_ones():
    message = config_error(None, sets=("train.augment=translation,flip",))
    assert "unknown op 'flip'" in message and "translation, cutout, color" in message


@pytest.mark.parametrize("value", ["sometimes", "1.5", "-0.1", "nan", "''"])
def test_augment_p_is_auto_or_a_probability(value):
    message = config_error(None, sets=(f"train.augment_p={value}",))
    assert "'train.augment_p' is " in message and "use auto or a number from 0 to 1" in message


@pytest.mark.parametrize("value, parsed", [("auto", "auto"), ("AUTO", "AUTO"), ("0.5", "0.5"), ("0", "0"), ("1", "1")])
def test_augment_p_accepts_auto_and_numbers(value, parsed):
    assert load_config(None, sets=(f"train.augment_p={value}",)).train.augment_p == parsed


@pytest.mark.parametrize("item", ["train.ada_kimg=0", "train.ada_target=1.5", "train.ada_interval=0"])
def test_ada_settings_out_of_range(item):
    assert f"'{item.split('=')[0]}' is " in config_error(None, sets=(item,))


@pytest.mark.parametrize("widths", ["[]", "[64, 0]", f"[{', '.join(['8'] * 9)}]", "[64, 100000000]"])
def test_discriminator_widths_are_bounded(widths):
    """Issue 18, item 12: any length and any width were accepted (a list of a million layers, say)."""
    message = config_error(None, sets=(f"model.d_widths={widths}",))
    assert "'model.d_widths' is " in message and "give 1 to 8 widths" in message and "from 1 to 4096" in message


def test_generator_too_narrow_for_its_upsamplings():
    assert "'model.g_width' 8 is too small" in config_error(None, sets=("data.size=512", "model.g_width=8"))


def test_crop_faces_needs_a_cascade():
    message = config_error(None, {"preprocess.crop_faces": True})
    assert "'preprocess.crop_faces' needs 'preprocess.cascade'" in message
    assert load_config(None, {"preprocess.crop_faces": True, "preprocess.cascade": "faces.xml"}).preprocess.crop_faces


def test_value_errors_name_every_layer_that_could_have_set_the_value():
    message = config_error("default", {"train.epochs": 3}, ("data.size=600",))
    assert message.startswith(f"{CONFIG_DIR / 'default.yaml'} + command line + --set: ")


# --- errors: files ------------------------------------------------------------------------------


def test_bad_yaml_syntax_names_the_file_and_line(tmp_path):
    path = write_yaml(tmp_path, "data:\n  size: 64\ntrain:\n  epochs: [1\n")
    message = config_error(path)
    assert message.startswith(f"{path}: not valid YAML at line ")


def test_yaml_that_is_not_a_mapping(tmp_path):
    assert "expected a mapping of sections" in config_error(write_yaml(tmp_path, "- data\n- train\n"))


def test_binary_file_instead_of_yaml(tmp_path):
    path = tmp_path / "face.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert config_error(path) == f"{path}: not UTF-8 text; give a YAML config file"


def test_a_key_given_twice_names_the_key_and_the_file(tmp_path):
    """Issue 18, item 12: YAML keeps the last of two equal keys, silently."""
    path = write_yaml(tmp_path, "train:\n  epochs: 5\n  g_lr: 0.001\n  epochs: 50\n")
    assert config_error(path) == f"{path}: key 'epochs' is given twice (line 4); keep one"
    path = write_yaml(tmp_path, "train:\n  epochs: 5\ntrain:\n  g_lr: 0.001\n")
    assert config_error(path) == f"{path}: key 'train' is given twice (line 3); keep one"


def test_a_folder_as_config_says_it_is_a_folder(tmp_path):
    """Issue 18, item 12: `--config DIR` said 'not found'."""
    message = config_error(tmp_path)
    assert message == f"--config '{tmp_path}' is a folder; give a YAML file in it, such as {tmp_path / 'config.yaml'}"


def test_a_config_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    """The quickstart draws demo/ and then runs `--config demo` in the same folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert resolve_config_path("demo") == CONFIG_DIR / "demo.yaml"


def test_missing_config_file_lists_the_shipped_ones():
    message = config_error("no-such-config")
    assert "config file 'no-such-config' not found" in message
    assert "default, demo" in message


def test_a_run_saved_before_a_key_existed_keeps_what_it_was_trained_with():
    from animegan.config import BEFORE_THE_KEY_EXISTED, config_from_dict

    saved = Config().to_dict()
    for key in BEFORE_THE_KEY_EXISTED:
        section, name = key.split(".")
        del saved[section][name]
    cfg = flatten(config_from_dict(saved, "old run").to_dict())
    assert {key: cfg[key] for key in BEFORE_THE_KEY_EXISTED} == BEFORE_THE_KEY_EXISTED
    assert cfg["model.d_mbstd"] != Config().model.d_mbstd  # the default moved on; the old run did not
    # A run that saved the key keeps its own value.
    assert flatten(config_from_dict(Config().to_dict(), "new run").to_dict()) == flatten(Config().to_dict())


def readme_config_table() -> dict[str, str]:
    """The README's table of config keys: {'model.g_kernel': '4', ...}, one entry per key of a row
    ('`train.ada_target`, `.ada_kimg`' share the section; one default for all or one each)."""
    readme = (CONFIG_DIR.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("| key | default | meaning |")[1].split("\n\n")[0]
    defaults = {}
    for row in table.strip().splitlines()[1:]:
        keys_cell, default_cell = [cell.strip() for cell in row.strip("|").split("|")[:2]]
        keys = [key.strip(" `") for key in keys_cell.split(",")]
        keys = [keys[0].rsplit(".", 1)[0] + key if key.startswith(".") else key for key in keys]
        values = [code or "none" for code, _ in re.findall(r"`([^`]*)`|(none)", default_cell)] or [default_cell]
        defaults.update(zip(keys, values if len(values) == len(keys) else values * len(keys)))
    return defaults


def test_the_readmes_config_table_lists_every_key_with_its_default():
    documented = readme_config_table()
    actual = flatten(asdict(Config()))
    assert set(documented) == set(actual)
    for key, text in documented.items():
        value = actual[key]
        if key == "name":
            continue  # "file stem": the config file's name, not a value
        if value is None:
            assert text == "none", key
        elif isinstance(value, bool):
            assert text == str(value).lower(), key
        elif isinstance(value, (int, float)):
            assert float(text) == pytest.approx(value), key
        elif isinstance(value, list):
            assert yaml.safe_load(text) == value, key
        else:
            assert text == str(value), key
