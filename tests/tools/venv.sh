# Sourced by the scripts that need a Python virtual environment.
# make_venv DIR: creates DIR as a venv; on Debian without python3-venv,
# installs it first when running as root.
make_venv() {
  local venv=$1
  if python3 -m venv "$venv" >&2; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq python3-venv python3-pip) >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
  else
    echo "python3 -m venv failed; install python3-venv" >&2
    return 1
  fi
}
