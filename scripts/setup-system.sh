#!/usr/bin/env bash
# Install the system packages weipian needs, from Debian's archive, if missing:
# PostgreSQL with PostGIS 3 (the embedded database and the tests) and GDAL's
# command-line tools (ogrinfo, for checking exported layers), Chinese TrueType fonts
# for report.pdf and the figures (WenQuanYi Micro Hei 黑体, AR PL UMing 宋体; reportlab
# embeds TrueType outlines only, so not Noto CJK), and poppler-utils (pdftoppm,
# pdffonts, pdftotext: the report tests).
# Safe to run again: it installs nothing when everything is there.
set -euo pipefail

have_postgis() { compgen -G "/usr/share/postgresql/*/extension/postgis.control" >/dev/null; }
have_pg() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_gdal() { command -v ogrinfo >/dev/null; }
have_fonts() { [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] && [ -f /usr/share/fonts/truetype/arphic/uming.ttc ]; }
have_poppler() { command -v pdftoppm >/dev/null; }

if have_pg && have_postgis && have_gdal && have_fonts && have_poppler; then
    exit 0
fi

pkgs=(postgresql postgresql-postgis gdal-bin fonts-wqy-microhei fonts-arphic-uming poppler-utils)
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "weipian needs: ${pkgs[*]} (Debian packages). Run as root: apt-get install -y ${pkgs[*]}" >&2
        exit 1
    fi
else
    SUDO=
fi
echo "Installing ${pkgs[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
have_postgis || { echo "PostGIS did not install; try: apt-get install postgresql-15-postgis-3" >&2; exit 1; }
