#!/bin/bash
# Installs the station on a Raspberry Pi 4 or 5 with Raspberry Pi OS Bookworm or Trixie.
#
#   git clone <repository> pev-charger && sudo pev-charger/hardware/install.sh
#
# Idempotent: run it again after an upgrade (--upgrade) or to check; every step says what it did,
# or that it was already done. It installs Debian packages (with the build tools lgpio needs where
# there is no wheel), the user `pev` in the gpio, i2c and dialout groups, a copy of this checkout
# in /opt/pev-charger/src, a venv in /opt/pev-charger with the `pi` extra, /etc/pev-charger/
# (station.toml from the example, an operator token), the config.txt lines for I2C at 400 kHz and
# the four port UARTs, the serial console's removal, udev rules naming the UARTs by their pins, and
# the systemd unit. config.txt changes take effect at the next boot.
#
# Options:
#   --pi 4|5       which Pi (default: read from /proc/device-tree/model)
#   --upgrade      fetch the newest commit of the checkout's branch into /opt/pev-charger/src and
#                  reinstall the venv's package
#   --dry-run      print every step and change nothing
#   --root DIR     install into DIR as a system root (an image, or a test): files, users, groups
#                  and units go under DIR; package installs, pip and service reloads are printed,
#                  not run
set -euo pipefail

ROOT=""
DRY_RUN=0
UPGRADE=0
PI=""
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="$(cd "${2:?--root needs a directory}" && pwd)"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --upgrade) UPGRADE=1; shift ;;
    --pi) PI="pi${2:?--pi needs 4 or 5}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PREFIX=/opt/pev-charger
SRC=$PREFIX/src
ETC=/etc/pev-charger
STATE=/var/lib/pev-charger
CHANGED_BOOT=0

say() { printf '%s\n' "$*"; }
done_already() { say "  = $*"; }
fail() { say "install.sh: $*" >&2; exit 1; }

# run CMD...: change the system (printed first; only printed under --dry-run)
run() {
  if [ "$DRY_RUN" = 1 ]; then say "  ~ would run: $*"; return 0; fi
  say "  + $*"
  "$@"
}
# host_run CMD...: a step that acts on the running machine (packages, services): under --root it
# is printed only, since DIR is not a running system
host_run() {
  if [ -n "$ROOT" ]; then say "  - skipped under --root: $*"; return 0; fi
  run "$@"
}

# install_file SOURCE DEST MODE [keep]: copy when missing or different ("keep": never overwrite)
install_file() {
  local from="$1" to="$ROOT$2" mode="$3" keep="${4:-}"
  if [ -e "$to" ] && { [ "$keep" = keep ] || cmp -s "$from" "$to"; }; then
    done_already "$2 is in place${keep:+ (kept as it is)}"
    return 1
  fi
  run install -D -m "$mode" "$from" "$to"
}

group_id() { awk -F: -v g="$1" '$1 == g { print $3 }' "$ROOT/etc/group"; }

# --- which Pi, which OS --------------------------------------------------------------------------
say "==> Checking the machine"
if [ -z "$PI" ]; then
  model="$(tr -d '\0' < "$ROOT/proc/device-tree/model" 2>/dev/null || true)"
  case "$model" in
    *"Raspberry Pi 5"*|*"Compute Module 5"*) PI=pi5 ;;
    *"Raspberry Pi 4"*|*"Compute Module 4"*) PI=pi4 ;;  # also the Pi 400
    *) fail "cannot tell which Raspberry Pi this is (model: '${model:-unknown}'); pass --pi 4 or --pi 5" ;;
  esac
  say "  $model"
fi
case "$PI" in pi4|pi5) ;; *) fail "--pi takes 4 or 5" ;; esac
# shellcheck source=/dev/null
codename="$(. "$ROOT/etc/os-release" 2>/dev/null && echo "${VERSION_CODENAME:-}")" || codename=""
case "$codename" in
  bookworm|trixie) say "  Raspberry Pi ${PI#pi}, Debian $codename" ;;
  *) say "  Raspberry Pi ${PI#pi}; warning: this script is written for Bookworm and Trixie, not '${codename:-unknown}'" ;;
esac
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  fail "run as root: sudo $0 $*"
fi
[ -f "$HERE/hal/pi/uarts.py" ] || fail "$HERE is not a pev-charger checkout"

# --- Debian packages -----------------------------------------------------------------------------
say "==> Debian packages"
# git for the checkout; venv for PEP 668's "externally managed" system Python; a compiler, Python's
# headers and swig for the packages that have no wheel for this Python (lgpio on 3.13, sysv_ipc);
# i2c-tools to look at the sensors (i2cdetect -y 1).
packages=(git python3-venv python3-dev build-essential swig i2c-tools)
# Raspberry Pi OS packages lgpio for its own Python: the venv then uses it (no build needed).
lgpio_from_apt=0
if [ -z "$ROOT" ] && apt-cache show python3-lgpio >/dev/null 2>&1; then
  packages+=(python3-lgpio liblgpio-dev)
  lgpio_from_apt=1
elif [ -z "$ROOT" ]; then
  say "  python3-lgpio is not in this system's package lists (not Raspberry Pi OS?): pip will use"
  say "  lgpio's wheel where there is one for this Python, else build it (needs liblgpio-dev)"
fi
missing=()
for package in "${packages[@]}"; do
  if [ -n "$ROOT" ] || ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  done_already "installed: ${packages[*]}"
else
  host_run apt-get update -qq
  host_run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- user and groups -----------------------------------------------------------------------------
say "==> The user pev and its groups"
rootopt=()
[ -n "$ROOT" ] && rootopt=(--root "$ROOT")
for group in gpio i2c dialout; do
  if [ -n "$(group_id "$group")" ]; then
    done_already "group $group exists"
  else
    run groupadd "${rootopt[@]}" --system "$group"
  fi
done
if awk -F: '$1 == "pev" { found = 1 } END { exit !found }' "$ROOT/etc/passwd"; then
  done_already "user pev exists"
else
  run useradd "${rootopt[@]}" --system --user-group --home-dir "$STATE" --no-create-home \
    --shell /usr/sbin/nologin --comment "pev-charger station" pev
fi
for group in gpio i2c dialout; do
  if awk -F: -v g="$group" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == "pev") found = 1 } END { exit !found }' "$ROOT/etc/group"; then
    done_already "pev is in $group"
  else
    run usermod "${rootopt[@]}" --append --groups "$group" pev
  fi
done

# --- the code and the venv -----------------------------------------------------------------------
say "==> The station's code in $SRC"
if [ -d "$ROOT$SRC/.git" ]; then
  done_already "$SRC is a checkout ($(git -C "$ROOT$SRC" rev-parse --short HEAD))"
  if [ "$UPGRADE" = 1 ]; then
    run git -C "$ROOT$SRC" pull --ff-only --quiet
  fi
else
  # as root, git refuses a checkout owned by another user unless told it is trusted
  here_git=(git -c safe.directory="$HERE" -C "$HERE")
  "${here_git[@]}" rev-parse --git-dir >/dev/null 2>&1 || fail "$HERE is not a git checkout: clone the repository with git"
  branch="$("${here_git[@]}" symbolic-ref --quiet --short HEAD || true)"
  origin="$("${here_git[@]}" remote get-url origin 2>/dev/null || echo "$HERE")"
  run git -c safe.directory="$HERE" -c safe.directory="$HERE/.git" clone --quiet ${branch:+--branch "$branch"} "$HERE" "$ROOT$SRC"
  [ -n "$branch" ] || run git -C "$ROOT$SRC" checkout --quiet "$("${here_git[@]}" rev-parse HEAD)"
  # later upgrades (--upgrade) fetch from where this checkout came from
  run git -C "$ROOT$SRC" remote set-url origin "$origin"
fi

say "==> The venv in $PREFIX"
venv_opts=()
[ "$lgpio_from_apt" = 1 ] && venv_opts=(--system-site-packages)  # Raspberry Pi OS's lgpio
if [ -x "$ROOT$PREFIX/bin/python" ]; then
  done_already "$PREFIX has a venv ($("$ROOT$PREFIX/bin/python" -V 2>&1))"
else
  host_run python3 -m venv "${venv_opts[@]}" "$PREFIX"
fi
if [ -n "$ROOT" ] || [ "$DRY_RUN" = 1 ] || [ "$UPGRADE" = 1 ] || [ ! -x "$PREFIX/bin/pev-charger" ]; then
  host_run "$PREFIX/bin/pip" install --quiet --upgrade pip
  host_run "$PREFIX/bin/pip" install --quiet --upgrade "${SRC}[pi]"
else
  done_already "$PREFIX/bin/pev-charger is installed (reinstall with --upgrade)"
fi
if [ -z "$ROOT" ] && [ -x "$PREFIX/bin/pip" ] && "$PREFIX/bin/pip" show --quiet RPi.GPIO >/dev/null 2>&1; then
  say "  RPi.GPIO is in the venv: it shadows rpi-lgpio and does not run on a Pi 5"
  run "$PREFIX/bin/pip" uninstall --quiet --yes RPi.GPIO
  run "$PREFIX/bin/pip" install --quiet --force-reinstall --no-deps rpi-lgpio
fi

# --- configuration -------------------------------------------------------------------------------
say "==> $ETC"
pev_gid="$(group_id pev)"
if install_file "$HERE/hardware/station.example.toml" "$ETC/station.toml" 0640 keep; then
  run chown "0:${pev_gid:-0}" "$ROOT$ETC/station.toml"
  say "  edit $ETC/station.toml for this station (name, budget, ports), then check it:"
  say "  $PREFIX/bin/pev-charger check-config $ETC/station.toml"
fi
if [ -e "$ROOT$ETC/environment" ]; then
  done_already "$ETC/environment is in place (kept as it is)"
elif [ "$DRY_RUN" = 1 ]; then
  say "  ~ would write $ETC/environment with a new PEV_OPERATOR_TOKEN"
else
  token="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
  say "  + write $ETC/environment (PEV_OPERATOR_TOKEN, readable by root and pev only)"
  umask 027
  printf '# The operator token for the API (Authorization: Bearer ...).\nPEV_OPERATOR_TOKEN=%s\n' \
    "$token" > "$ROOT$ETC/environment"
  umask 022
  chown "0:${pev_gid:-0}" "$ROOT$ETC/environment"
fi

# --- boot configuration --------------------------------------------------------------------------
say "==> Boot configuration (I2C, UARTs, serial console)"
boot=/boot/firmware
[ -d "$ROOT$boot" ] || boot=/boot
config_txt="$ROOT$boot/config.txt"
begin="# pev-charger: begin (written by hardware/install.sh; edit hal/pi/uarts.py, not here)"
end="# pev-charger: end"
block="$(printf '%s\n[all]\n%s\n%s' "$begin" "$(python3 "$HERE/hal/pi/uarts.py" config-txt "$PI")" "$end")"
current="$(sed -n "/^# pev-charger: begin/,/^# pev-charger: end/p" "$config_txt" 2>/dev/null || true)"
if [ "$current" = "$block" ]; then
  done_already "$boot/config.txt has the station's lines"
elif [ "$DRY_RUN" = 1 ]; then
  say "  ~ would set in $boot/config.txt:"; printf '%s\n' "$block" | sed 's/^/      /'
else
  [ -e "$config_txt" ] && [ ! -e "$config_txt.pev-charger.orig" ] && run cp -p "$config_txt" "$config_txt.pev-charger.orig"
  say "  + set in $boot/config.txt:"; printf '%s\n' "$block" | sed 's/^/      /'
  mkdir -p "$(dirname "$config_txt")"
  { sed "/^# pev-charger: begin/,/^# pev-charger: end/d" "$config_txt" 2>/dev/null || true
    printf '%s\n' "$block"; } > "$config_txt.new"
  mv "$config_txt.new" "$config_txt"
  CHANGED_BOOT=1
fi
for other in "dtparam=i2c_arm=off" "dtparam=i2c_arm_baudrate=100000"; do
  if grep -q "^$other" "$config_txt" 2>/dev/null; then
    say "  warning: $boot/config.txt also has '$other' above the station's lines; the later line wins"
  fi
done

cmdline="$ROOT$boot/cmdline.txt"
if [ -e "$cmdline" ] && grep -Eq 'console=(serial0|ttyAMA0|ttyS0)(,[0-9]+)? ?' "$cmdline"; then
  if [ "$DRY_RUN" = 1 ]; then
    say "  ~ would remove the serial console from $boot/cmdline.txt"
  else
    [ -e "$cmdline.pev-charger.orig" ] || run cp -p "$cmdline" "$cmdline.pev-charger.orig"
    say "  + remove the serial console (console=serial0/ttyAMA0/ttyS0) from $boot/cmdline.txt"
    sed -E -i 's/console=(serial0|ttyAMA0|ttyS0)(,[0-9]+)? ?//g' "$cmdline"
    CHANGED_BOOT=1
  fi
else
  done_already "no serial console in $boot/cmdline.txt"
fi

systemctl_root=(systemctl)
[ -n "$ROOT" ] && systemctl_root=(systemctl --root "$ROOT")
units=(serial-getty@serial0.service serial-getty@ttyAMA0.service serial-getty@ttyS0.service)
[ "$PI" = pi4 ] && units+=(hciuart.service)  # disable-bt: Bluetooth leaves the PL011 to port 1
for unit in "${units[@]}"; do
  if [ "$(readlink "$ROOT/etc/systemd/system/$unit" 2>/dev/null)" = /dev/null ]; then
    done_already "$unit is masked"
  else
    run "${systemctl_root[@]}" mask --quiet "$unit"
  fi
done

say "==> udev rules: the UARTs by their pins (/dev/pev-uart-TX-RX)"
rules="$(mktemp)"
trap 'rm -f "$rules"' EXIT
python3 "$HERE/hal/pi/uarts.py" udev "$PI" > "$rules"
if install_file "$rules" /etc/udev/rules.d/90-pev-charger-uarts.rules 0644; then
  host_run udevadm control --reload
  host_run udevadm trigger --subsystem-match=tty
fi

# --- the service ---------------------------------------------------------------------------------
say "==> The systemd unit"
if install_file "$HERE/hardware/pev-charger.service" /etc/systemd/system/pev-charger.service 0644; then
  host_run systemctl daemon-reload
fi
if [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/pev-charger.service" ]; then
  done_already "pev-charger.service is enabled"
else
  run "${systemctl_root[@]}" enable --quiet pev-charger.service
fi

say "==> Done"
if [ "$CHANGED_BOOT" = 1 ]; then
  say "  The boot configuration changed: reboot (sudo reboot). The station starts at boot."
else
  say "  Start or restart the station: sudo systemctl restart pev-charger"
fi
say "  Logs: journalctl -u pev-charger -f (faults only: journalctl -u pev-charger -p warning)"
