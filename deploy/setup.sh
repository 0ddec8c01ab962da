#!/usr/bin/env bash
# Set up pispeaker from a source checkout: the Debian packages it builds against and a
# virtualenv in .venv with pispeaker installed. Safe to run again: it only adds what is missing.
#
#   deploy/setup.sh          the daemon and its command line
#   deploy/setup.sh --test   plus the test and lint tools
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=""
packages=(python3 python3-venv python3-dev gcc pkg-config libasound2-dev libsystemd-dev)
if [[ "${1:-}" == "--test" ]]; then
    extras="[test,dev]"
    # espeak-ng and sox synthesize the wake-word tests' speech; systemd brings systemd-analyze;
    # debootstrap makes the Debian root the Ansible provisioning test runs the playbook into.
    packages+=(espeak-ng sox systemd debootstrap)
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ ! -x "$root/.venv/bin/python" ]]; then
    echo "setup: creating $root/.venv"
    python3 -m venv "$root/.venv"
fi
echo "setup: installing pispeaker$extras into .venv"
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root$extras"
