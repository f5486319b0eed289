"""Config files on disk: where `--config NAME` points, and reading one YAML file into a plain mapping.

Standard library and PyYAML only. What the keys mean, and whether their values are valid, is config.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from animegan.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (plain PyYAML keeps the last, silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class DuplicateKey(Exception):
    def __init__(self, key, line: int):
        super().__init__(key, line)
        self.key, self.line = key, line


def resolve_config_path(name_or_path: str) -> Path:
    """Accept a file path, or the name of a file in configs/ ('demo' -> configs/demo.yaml). A name wins
    over a folder of that name: the quickstart runs `--config demo` beside the demo/ it drew."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    if path.is_dir():
        raise UserError(
            f"--config '{name_or_path}' is a folder; give a YAML file in it, such as {path / 'config.yaml'}"
        )
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) if CONFIG_DIR.is_dir() else "none"
    raise UserError(f"config file '{name_or_path}' not found; give a YAML path or one of: {known}")


def read_config_file(file: Path) -> dict:
    """The mapping of sections in one YAML config file; every way it can be unreadable is a UserError naming it."""
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=UniqueKeyLoader) or {}
    except DuplicateKey as exc:
        raise UserError(f"{file}: key '{exc.key}' is given twice (line {exc.line}); keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{file}: not valid YAML{where}; fix the syntax") from None
    except OSError as exc:
        raise UserError(f"{file}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{file}: not UTF-8 text; give a YAML config file") from None
    if not isinstance(data, dict):
        raise UserError(f"{file}: expected a mapping of sections (data:, model:, train:, ...)")
    return data
