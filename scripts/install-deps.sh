#!/usr/bin/env bash
# Installs what idstation builds and tests with on Debian 12, idempotently:
# Debian packages (PC/SC stack with vsmartcard's vpcd, SoftHSM2, OpenSC, yubico-piv-tool, ...)
# PostgreSQL for the centre, and the Python tools the tests use as independent oracles (pkilint, pyHanko, mrz, pyscard).
set -euo pipefail

APT_PACKAGES=(
  pcscd libpcsclite-dev pcsc-tools vsmartcard-vpcd
  softhsm2 opensc yubico-piv-tool
  pkg-config openssl sqlite3 xvfb python3-pip
  # pdftotext reads the PIN letter back in the tests (an independent PDF reader)
  poppler-utils
  # the national centre's registry: a private cluster per test run / demo (scripts/pg-up.sh)
  postgresql
  # GUI: a font with the Uzbek modifier letters (ʻ ʼ), Mesa's lavapipe for the wgpu snapshot tests
  fonts-dejavu-core mesa-vulkan-drivers libvulkan1
  # libfaketime: a station run as if months had passed (the Document Signer's automatic renewal)
  faketime
)
PIP_PACKAGES=(pkilint 'pyhanko[pkcs11]' pyhanko-cli mrz pyscard)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# pip: prefer the interpreter on PATH (pyenv on our build machines, /usr/bin/python3 elsewhere).
PY=python3
need_pip=()
python_has() { "$PY" -c "import $1" >/dev/null 2>&1; }
python_has pkilint || need_pip+=(pkilint)
python_has pyhanko || need_pip+=('pyhanko[pkcs11]')
# pyHanko signs with a card through PKCS#11 (OpenSC) with python-pkcs11, its [pkcs11] extra.
python_has pkcs11 || need_pip+=(python-pkcs11)
# The `pyhanko` command (docs/relying-parties.md) lives in its own package since pyHanko 0.38.
python_has pyhanko.cli || need_pip+=(pyhanko-cli)
python_has mrz || need_pip+=(mrz)
python_has smartcard || need_pip+=(pyscard)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "install-deps: pip install ${need_pip[*]}"
  pip_flags=(-q)
  # Debian's own python refuses system-wide pip installs (PEP 668); our tools are test oracles only.
  if "$PY" -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    if [ "$("$PY" -c 'import sys; print(sys.prefix)')" = "/usr" ]; then pip_flags+=(--break-system-packages); fi
  fi
  "$PY" -m pip install "${pip_flags[@]}" "${need_pip[@]}"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

for tool in faketime pdftotext lint_etsi_cert lint_pkix_cert lint_crl openssl pkcs11-tool pkcs15-tool yubico-piv-tool softhsm2-util pcscd; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-deps: $tool is still missing after install" >&2; exit 1; }
done
echo "install-deps: all present"
