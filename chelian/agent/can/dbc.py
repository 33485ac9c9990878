"""Finding and loading DBC files, including the ones opendbc only ships as sources.

The `opendbc` wheel has two kinds of DBC: complete files in `opendbc/dbc/` (`vw_mqb.dbc`,
`tesla_can.dbc`, ...) and, for Toyota, Honda, Hyundai CAN-FD, Subaru, Nissan, GM powertrain and
Chrysler, fragments under `opendbc/dbc/generator/` that are stitched together in memory
(`opendbc.get_generated_dbcs()`) into `<name>_generated`. No `*_generated.dbc` file exists on
disk, yet cantools, `cantools dump` and people need a file: `opendbc_dbc` writes the generated
text once into a cache directory keyed by the opendbc version, so the path stays stable.

cantools loads opendbc files with `strict=False`: opendbc deliberately lets signals overlap
(two interpretations of the same bits), which strict mode refuses.
"""

from __future__ import annotations

import difflib
import functools
import os
import tempfile
from importlib import metadata
from pathlib import Path

import cantools
from cantools.database.can import Database


class DbcNotFound(FileNotFoundError):
    """No DBC of that name in opendbc; the message lists the closest names."""


def _opendbc_dir() -> Path:
    import opendbc

    return Path(opendbc.DBC_PATH)


def _generated() -> dict[str, str]:
    from opendbc import get_generated_dbcs

    return get_generated_dbcs()


def opendbc_names() -> list[str]:
    """Every DBC name opendbc provides (file stem, `_generated` ones included), sorted."""
    static = {p.stem for p in _opendbc_dir().glob("*.dbc")}
    return sorted(static | set(_generated()))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chelian" / f"opendbc-{metadata.version('opendbc')}"


def opendbc_dbc(name: str, cache_dir: Path | None = None) -> Path:
    """The path of opendbc's DBC called `name` (with or without `.dbc`).

    Complete files are returned where the wheel installed them; `*_generated` ones are
    written to `cache_dir` (default `~/.cache/chelian/opendbc-<version>/`) first.
    """
    stem = name.removesuffix(".dbc")
    static = _opendbc_dir() / f"{stem}.dbc"
    if static.is_file():
        return static
    content = _generated().get(stem)
    if content is None:
        close = difflib.get_close_matches(stem, opendbc_names(), n=6, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise DbcNotFound(f"opendbc has no DBC named {stem!r}{hint} "
                          "(all names: chelian.agent.can.opendbc_names())")
    target = (cache_dir or default_cache_dir()) / f"{stem}.dbc"
    if not target.is_file() or target.read_text(encoding="utf-8") != content:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: two agents starting at once must never read half a file.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{stem}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
        os.replace(tmp, target)
    return target


def resolve_dbc(ref: str | Path, relative_to: Path | None = None) -> Path:
    """A DBC given as a path (absolute, or relative to a mapping file) or as an opendbc name."""
    path = Path(ref)
    if path.suffix == ".dbc" or len(path.parts) > 1:
        candidate = path if path.is_absolute() or relative_to is None else relative_to / path
        if candidate.is_file():
            return candidate
        if len(path.parts) > 1:
            raise DbcNotFound(f"DBC file {candidate} does not exist")
    return opendbc_dbc(str(ref))


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int) -> Database:
    del mtime_ns  # part of the cache key only: an edited file is parsed again
    return cantools.database.load_file(path, database_format="dbc", strict=False)


def load_dbc(path: str | Path) -> Database:
    """Parse a DBC with cantools (cached per file version; treat the result as read-only)."""
    p = Path(path)
    return _load(str(p.resolve()), p.stat().st_mtime_ns)
