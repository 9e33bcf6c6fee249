# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/demo, scripts/test and scripts/bench: installs the Debian
# packages cutover needs when they are missing, then builds.
#   cutover_setup_packages      apt-get install what is missing
#   cutover_build DIR [cmake args...]   configure and build into DIR

CUTOVER_PACKAGES="build-essential cmake pkg-config libev-dev libyaml-dev check
haproxy clang libclang-rt-dev wrk curl python3 python3-pytest python3-pytest-timeout
valgrind debhelper lintian systemd man-db prometheus"

cutover_setup_packages() {
	local missing="" p
	for p in $CUTOVER_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	# python3 may come from elsewhere on PATH (pyenv); it only has to run.
	if command -v python3 >/dev/null 2>&1; then
		missing=$(echo "$missing " | sed 's/ python3 / /; s/ $//')
	fi
	[ -z "$missing" ] && return 0
	echo "setup: installing$missing" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: not root; install these Debian packages:$missing" >&2
		return 1
	fi
	apt-get update -qq >&2 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
}

cutover_build() {
	local dir=$1
	shift
	cmake -S "$CUTOVER_ROOT" -B "$CUTOVER_ROOT/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCUTOVER_WERROR=ON "$@" >/dev/null &&
		cmake --build "$CUTOVER_ROOT/$dir" -j "$(nproc)" -- --no-print-directory >/dev/null
}
