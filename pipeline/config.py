"""county.toml: one file describing a county and its input layers (contract.md).

Everything is checked before any stage writes: an unknown layer kind, a missing
file or an unusable CRS stops the run with one line naming the file and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pyproj import CRS
from pyproj.exceptions import CRSError

from pipeline import SCHEMAS_DIR
from pipeline.errors import ConfigError, DataSourceError

with open(SCHEMAS_DIR / "layers.toml", "rb") as _f:
    #: Standard layer definitions, from schemas/layers.toml.
    LAYER_KINDS: dict = tomllib.load(_f)

#: [settings] of county.toml and their defaults.
#: outside_tolerance_m: how far (m) beyond the township layer a feature may lie and
#: still belong to the county; change polygons farther out are quarantined, reference
#: features farther out are dropped and counted (ingest).
DEFAULT_SETTINGS = {"min_part_m2": 10.0, "outside_tolerance_m": 1000.0}


@dataclass(frozen=True)
class Layer:
    """One `[[layers]]` entry, with its path resolved against county.toml."""

    index: int  # position in county.toml: later layers replace earlier ones
    kind: str
    path: Path
    layer: str | None = None
    encoding: str | None = None
    crs: int | None = None  # EPSG code given in county.toml for a source without .prj
    fields: dict[str, str] = field(default_factory=dict)
    pzlx: str | None = None
    batch: str | None = None

    @property
    def label(self) -> str:
        """How messages name this layer: the file, and the layer inside it."""
        return f"{self.path.name}:{self.layer}" if self.layer else self.path.name


@dataclass(frozen=True)
class County:
    code: str
    name: str
    srid: int
    toml_path: Path
    settings: dict
    layers: tuple[Layer, ...]

    def layers_of(self, kind: str) -> list[Layer]:
        return [lyr for lyr in self.layers if lyr.kind == kind]

    @property
    def batches(self) -> list[str]:
        """Batches named by the change layers, in file order, without repeats."""
        return list(dict.fromkeys(l.batch for l in self.layers_of("change")))


def epsg_of(text: str, where: str) -> int:
    """EPSG code of a CRS given as 'EPSG:4546', '4546' or any pyproj-readable text."""
    try:
        crs = CRS.from_user_input(int(text) if str(text).isdigit() else text)
    except CRSError:
        raise ConfigError(f"{where}: crs {text!r} is not a known CRS; write it as \"EPSG:4546\"") from None
    code = crs.to_epsg()
    if code is None:
        raise ConfigError(f"{where}: crs {text!r} has no EPSG code; write it as \"EPSG:4546\"")
    return code


def load_county(path: str | Path) -> County:
    """Read and check county.toml; raise ConfigError / DataSourceError with one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; give the path of the county's county.toml")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    base = path.resolve().parent
    _refuse_credentials(doc, path)
    unknown = set(doc) - {"county", "settings", "layers"}
    if unknown:
        raise ConfigError(f"{path.name}: unknown table(s) {', '.join(sorted(unknown))}; "
                          "county.toml has [county], [settings] and [[layers]]")

    county = doc.get("county")
    if not isinstance(county, dict):
        raise ConfigError(f"{path}: missing [county] table with code, name and crs")
    for key in ("code", "name", "crs"):
        if not county.get(key):
            raise ConfigError(f"{path}: [county] has no {key}; see contract.md for the format")
    srid = epsg_of(str(county["crs"]), f"{path.name} [county]")
    if not CRS.from_epsg(srid).is_projected:
        raise ConfigError(
            f"{path.name} [county]: crs EPSG:{srid} is not projected; the working CRS must be "
            "a Gauss-Kruger CRS in metres such as EPSG:4546"
        )

    settings = dict(DEFAULT_SETTINGS)
    for key, value in (doc.get("settings") or {}).items():
        if key not in DEFAULT_SETTINGS:
            raise ConfigError(f"{path.name} [settings]: unknown setting {key!r}; known: {', '.join(DEFAULT_SETTINGS)}")
        try:
            settings[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path.name} [settings]: {key} = {value!r} is not a number") from None

    layers = []
    for i, raw in enumerate(doc.get("layers") or []):
        layers.append(_layer(i, raw, base, path.name))
    if not [l for l in layers if l.kind == "change"]:
        raise ConfigError(f"{path.name}: no [[layers]] of kind \"change\"; nothing to judge")
    for kind in ("township", "landuse"):
        if not [l for l in layers if l.kind == kind]:
            raise ConfigError(f"{path.name}: no [[layers]] of kind \"{kind}\"; it is required")
    return County(
        code=str(county["code"]).strip(),
        name=str(county["name"]).strip(),
        srid=srid,
        toml_path=path.resolve(),
        settings=settings,
        layers=tuple(layers),
    )


_SECRET_KEYS = {"password", "passwd", "pwd", "database_url", "url", "dsn", "database", "db", "user"}


def _refuse_credentials(doc: dict, path: Path) -> None:
    """Database credentials never live in county.toml: files get copied and mailed."""
    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if str(k).lower() in _SECRET_KEYS or (isinstance(v, str) and "://" in v and "@" in v):
                    raise ConfigError(
                        f"{path.name}: {where}{k} looks like database credentials; county.toml must not hold "
                        "them — set DATABASE_URL or PGSERVICE in the environment (passwords in ~/.pgpass)"
                    )
                walk(v, f"{where}{k}.")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}{i + 1}.")
    walk(doc, "")


def _layer(i: int, raw: dict, base: Path, toml_name: str) -> Layer:
    where = f"{toml_name} layer {i + 1}"
    kind = raw.get("kind")
    if kind not in LAYER_KINDS:
        raise ConfigError(
            f"{where}: unknown kind {kind!r}; use one of {', '.join(LAYER_KINDS)}"
        )
    if not raw.get("path"):
        raise ConfigError(f"{where} ({kind}): no path")
    where = f"{toml_name} layer {i + 1} ({kind}, {raw['path']})"
    known = {"kind", "path", "layer", "encoding", "crs", "fields", "pzlx", "batch"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    p = (base / raw["path"]).resolve()
    if not p.exists():
        raise DataSourceError(f"{raw['path']}: 文件不存在（查找位置 {p}）；请检查 {toml_name} 中该图层的 path")
    fields = raw.get("fields") or {}
    if not isinstance(fields, dict):
        raise ConfigError(f"{where}: fields must be a table such as {{ XZQDM = \"DM\" }}")
    std = set(LAYER_KINDS[kind]["fields"])
    bad = [k for k in fields if k.upper() not in std]
    if bad:
        raise ConfigError(
            f"{where}: fields maps {', '.join(bad)}, which are not standard {kind} fields "
            f"({', '.join(LAYER_KINDS[kind]['fields'])})"
        )
    batch = raw.get("batch")
    if kind == "change" and not batch:
        raise ConfigError(f"{where}: a change layer needs batch = \"2022\" (or e.g. \"2025Q2\")")
    if batch is not None:
        batch = str(batch).strip()
        if not batch[:4].isdigit():
            raise ConfigError(f"{where}: batch {batch!r} must start with its year, e.g. \"2022\" or \"2025Q2\"")
    return Layer(
        index=i,
        kind=kind,
        path=p,
        layer=raw.get("layer"),
        encoding=raw.get("encoding"),
        crs=epsg_of(str(raw["crs"]), where) if raw.get("crs") else None,
        fields={k.upper(): str(v) for k, v in fields.items()},
        pzlx=raw.get("pzlx"),
        batch=batch,
    )
