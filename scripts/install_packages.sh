# Sourced by scripts/setup.sh and scripts/ci_aarch64.sh: installs the Debian/Ubuntu packages that
# are missing, as root, through sudo, or (when neither is possible) prints the command to run.
#
#   install_missing WHO PREPARE PACKAGE...
#
# WHO names the caller in messages; PREPARE is a command run first when something is missing
# ("" for none; e.g. `dpkg --add-architecture arm64`). Returns 0 when it installed something and
# 1 when everything was already there; exits 1 when packages are missing and cannot be installed.
install_missing() {
  local who=$1 prepare=$2
  shift 2
  local missing=() p native
  native=$(dpkg --print-architecture)
  for p in "$@"; do
    # A name without ":arch" means the machine's own architecture (or "all"): with arm64 builds
    # of the same package installed beside it (scripts/ci_aarch64.sh), dpkg-query lists both.
    if [[ $p == *:* ]]; then
      dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx "install ok installed" || missing+=("$p")
    else
      dpkg-query -W -f='${Architecture} ${Status}\n' "$p" 2>/dev/null |
        grep -qE "^($native|all) install ok installed$" || missing+=("$p")
    fi
  done
  (( ${#missing[@]} > 0 )) || return 1
  local install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  [[ -z $prepare ]] || install_cmd="$prepare && $install_cmd"
  echo "$who: missing packages: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    bash -c "$install_cmd"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo bash -c "$install_cmd"
  else
    echo "$who: packages are missing and this user cannot install them; as root, run:" >&2
    echo "  $install_cmd" >&2
    echo "then run this script again." >&2
    exit 1
  fi
}
