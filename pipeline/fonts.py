"""Finding a font that renders Chinese, for the PDF report and the figures.

The report is handed upward as a PDF, so every character must be drawn from a
font embedded in it: a missing glyph prints as an empty box, and a font that is
only referenced (reportlab's built-in ``STSong-Light``) depends on the reader's
machine. reportlab embeds TrueType outlines only (it refuses the CFF outlines of
Noto/Source Han ``.otf``/``.ttc``), so the fonts looked for are TrueType ones:
Debian's ``fonts-wqy-microhei`` (黑体 style, headings, tables, figures) and
``fonts-arphic-uming`` (宋体 style, body text), installed by
``scripts/setup-system.sh``; Windows' SimHei / SimSun / Microsoft YaHei work too.
``WEIPIAN_CJK_FONT`` (and ``WEIPIAN_CJK_SERIF_FONT``) name a font file directly,
``path.ttc#1`` picking a face of a collection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.errors import WeipianError

#: Characters every candidate must cover: the words of the narrative and tables.
PROBE = "稷山县全年土地卫片执法违法用地宗亩耕地永久基本农田乡镇合计比例（）：。、—％"

SANS_FAMILIES = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "SimHei", "Microsoft YaHei",
                 "Droid Sans Fallback")
SERIF_FAMILIES = ("AR PL UMing CN", "AR PL SungtiL GB", "SimSun", "NSimSun")

#: Where these fonts live when fontconfig cannot be asked (no fc-list on the PATH).
KNOWN_FILES = {
    "WenQuanYi Micro Hei": ["/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"],
    "WenQuanYi Zen Hei": ["/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"],
    "AR PL UMing CN": ["/usr/share/fonts/truetype/arphic/uming.ttc"],
    "Droid Sans Fallback": ["/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"],
    "SimHei": ["C:/Windows/Fonts/simhei.ttf"],
    "SimSun": ["C:/Windows/Fonts/simsun.ttc"],
    "Microsoft YaHei": ["C:/Windows/Fonts/msyh.ttc"],
}

INSTALL_HINT = ("install one (Debian: apt-get install fonts-wqy-microhei fonts-arphic-uming, "
                "or `make setup`) or set WEIPIAN_CJK_FONT to a TrueType .ttf/.ttc file")


class FontError(WeipianError):
    """No usable font for Chinese text; the outputs that draw text cannot be made."""

    exit_code = 5  # the outputs cannot be written (like a full disk), see cli.py


@dataclass(frozen=True)
class Font:
    """A face of a font file: ``index`` selects the face inside a .ttc collection."""

    path: Path
    index: int
    family: str

    @property
    def rl_name(self) -> str:
        """The name it is registered under with reportlab."""
        return f"{self.path.stem}-{self.index}"


def sans() -> Font:
    """The 黑体-style font: headings, tables and figures."""
    return _find("WEIPIAN_CJK_FONT", SANS_FAMILIES + SERIF_FAMILIES)


def serif() -> Font:
    """The 宋体-style font for body text; the sans font when there is none."""
    try:
        return _find("WEIPIAN_CJK_SERIF_FONT", SERIF_FAMILIES, fallback_any=False)
    except FontError:
        return sans()


@lru_cache(maxsize=None)
def _find(env: str, families: tuple[str, ...], fallback_any: bool = True) -> Font:
    given = os.environ.get(env) or (os.environ.get("WEIPIAN_CJK_FONT") if env != "WEIPIAN_CJK_FONT" else None)
    if given:
        path, _, index = given.partition("#")
        font = _usable(Path(path), int(index or 0))
        if font is None:
            raise FontError(f"{env}={given}: not a TrueType font file that covers Chinese; {INSTALL_HINT}")
        return font
    installed = _fontconfig_faces()
    for family in families:
        for path, index in installed.get(family, []) + [(Path(p), 0) for p in KNOWN_FILES.get(family, [])]:
            font = _usable(path, index)
            if font is not None:
                return font
    if fallback_any:
        for faces in installed.values():
            for path, index in faces:
                font = _usable(path, index)
                if font is not None:
                    return font
    raise FontError(f"no TrueType font that renders Chinese was found (looked for "
                    f"{', '.join(families)}); {INSTALL_HINT}")


def _fontconfig_faces() -> dict[str, list[tuple[Path, int]]]:
    """Family name → (file, face index) of every font fontconfig lists for Chinese."""
    if not shutil.which("fc-list"):
        return {}
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "family", "file", "index", "-f",
                              "%{family[0]}\t%{file}\t%{index}\n"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    faces: dict[str, list[tuple[Path, int]]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].isdigit():
            faces.setdefault(parts[0], []).append((Path(parts[1]), int(parts[2])))
    return faces


@lru_cache(maxsize=None)
def _usable(path: Path, index: int) -> Font | None:
    """The face if reportlab can embed it and it covers PROBE, else None."""
    if not path.is_file():
        return None
    try:
        ttf = _reportlab_font(path, index)
    except Exception:  # CFF outlines, broken file, bad index: not usable, look further
        return None
    if any(ord(ch) not in ttf.face.charToGlyph for ch in PROBE):
        return None
    family = ttf.face.familyName
    if isinstance(family, bytes):
        family = family.decode("utf-8", "replace")
    return Font(path=path, index=index, family=str(family or path.stem))


@lru_cache(maxsize=None)
def _reportlab_font(path: Path, index: int):
    """Parse a face once per process: it takes most of a second for a CJK font."""
    from reportlab.pdfbase.ttfonts import TTFont

    return TTFont(f"{path.stem}-{index}", str(path), subfontIndex=index)


def missing_glyphs(font: Font, text: str) -> set[str]:
    """The characters of ``text`` that ``font`` cannot draw (whitespace ignored)."""
    cmap = _reportlab_font(font.path, font.index).face.charToGlyph
    return {ch for ch in text if not ch.isspace() and ord(ch) not in cmap}


def register_reportlab(font: Font) -> str:
    """Register ``font`` with reportlab (embedded, subset) and return its name there."""
    from reportlab.pdfbase import pdfmetrics

    if font.rl_name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(_reportlab_font(font.path, font.index))
    return font.rl_name


def use_in_matplotlib(font: Font | None = None) -> str:
    """Make ``font`` (default: :func:`sans`) matplotlib's font; return its family name.

    Used by the figures and by the analyst notebook, so both draw 乡镇 names.
    """
    from matplotlib import font_manager, rcParams

    font = font or sans()
    if not any(f.fname == str(font.path) for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(font.path))
    name = font_manager.FontProperties(fname=str(font.path)).get_name()
    rcParams["font.family"] = "sans-serif"
    rcParams["font.sans-serif"] = [name] + [f for f in rcParams["font.sans-serif"] if f != name]
    rcParams["axes.unicode_minus"] = False
    return name
