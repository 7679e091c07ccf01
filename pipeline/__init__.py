"""weipian: a PostGIS pipeline for 土地卫片执法 (satellite-image land-law enforcement)."""

from pathlib import Path

__version__ = "0.1.0"

#: Root of the source tree (the folder holding ``sql/`` and ``schemas/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
