#!/usr/bin/env bash
# The Debian package, installed for real (as root; scripts/test.sh runs this after the tests):
# dpkg -i, the installed `loghost demo`, the man pages, completions, the user and directories,
# the unit (checked by systemd-analyze, not enabled), `dpkg -r` keeping the data, `dpkg -P`
# removing all but the system user (kept, as Debian does).
# Usage: scripts/package-test.sh [DEB]   (default: the one scripts/package.sh built)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "package test: FAILED: $*" >&2; exit 1; }
deb=${1:-$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/loghost_*.deb 2>/dev/null | head -1)}
[ -f "$deb" ] || fail "no package in target/debian (run scripts/package.sh)"
[ "$(id -u)" -eq 0 ] || { echo "package test: skipped (needs root: dpkg -i)" >&2; exit 0; }
if dpkg -s loghost >/dev/null 2>&1; then
    echo "package test: skipped: a loghost package is installed here already (not touched)" >&2
    exit 0
fi

echo "package test: installing $deb"
# A failed run purges what it installed, so the next run (and the machine) starts clean.
work=$(mktemp -d)
cleanup() {
    rc=$?
    rm -rf "$work"
    if [ $rc -ne 0 ] && dpkg -s loghost >/dev/null 2>&1; then
        echo "package test: purging the package this failed run installed" >&2
        dpkg -P loghost >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
out=$(dpkg -i "$deb" 2>&1) || { echo "$out" >&2; fail "dpkg -i"; }
echo "$out" | grep -q "NOT enabled nor started" || fail "postinst did not say the unit is not enabled: $out"

[ -x /usr/bin/loghost ] || fail "/usr/bin/loghost missing"
/usr/bin/loghost --version
mkdir "$work/demo"
(cd "$work/demo" && loghost demo >"$work/demo.log" 2>&1) \
    || { tail -20 "$work/demo.log" >&2; fail "the installed loghost demo"; }
grep -q "Demo complete" "$work/demo.log" || fail "demo did not complete"

man -w loghost >/dev/null || fail "man -w loghost"
man -w loghost-check >/dev/null || fail "man -w loghost-check"
man -w loghost-prove-inclusion >/dev/null || fail "man -w loghost-prove-inclusion"
for f in /usr/share/bash-completion/completions/loghost /usr/share/zsh/vendor-completions/_loghost \
         /usr/share/fish/vendor_completions.d/loghost.fish /usr/share/doc/loghost/README.md \
         /usr/share/doc/loghost/examples/loghost.rules.yml /usr/share/doc/loghost/examples/loghost.json; do
    [ -s "$f" ] || fail "$f missing"
done

getent passwd loghost >/dev/null || fail "no loghost user"
[ "$(stat -c '%a %U' /var/lib/loghost)" = "700 loghost" ] || fail "/var/lib/loghost: $(stat -c '%a %U' /var/lib/loghost)"
[ "$(stat -c '%a %U' /etc/loghost)" = "700 loghost" ] || fail "/etc/loghost: $(stat -c '%a %U' /etc/loghost)"
[ "$(stat -c '%a %U' /etc/loghost/loghost.toml)" = "600 loghost" ] || fail "loghost.toml mode"
dpkg-query -W -f='${Conffiles}\n' loghost | grep -q /etc/loghost/loghost.toml || fail "not a conffile"
# An upgrade whose example config changed replaces the unedited conffile: it must stay the
# service's (dpkg-statoverride), or the service could not read it after the upgrade. The newer
# package is this one repacked with a later version and one more line in the example.
dpkg-deb -R "$deb" "$work/pkg"
echo "# a line of the next version" >> "$work/pkg/etc/loghost/loghost.toml"
if [ -f "$work/pkg/DEBIAN/md5sums" ]; then
    (cd "$work/pkg" && md5sum etc/loghost/loghost.toml) > "$work/md5"
    grep -v ' etc/loghost/loghost.toml$' "$work/pkg/DEBIAN/md5sums" >> "$work/md5" || true
    cp "$work/md5" "$work/pkg/DEBIAN/md5sums"
fi
sed -i 's/^Version: \(.*\)$/Version: \1+next/' "$work/pkg/DEBIAN/control"
dpkg-deb -Zgzip -z1 -b "$work/pkg" "$work/next.deb" >/dev/null
dpkg -i "$work/next.deb" >/dev/null 2>&1 || fail "dpkg -i of the next version (an upgrade)"
grep -q "a line of the next version" /etc/loghost/loghost.toml || fail "the upgrade kept the old example"
[ "$(stat -c '%a %U' /etc/loghost/loghost.toml)" = "600 loghost" ] \
    || fail "after an upgrade, loghost.toml is $(stat -c '%a %U' /etc/loghost/loghost.toml)"
rm -rf "$work/pkg" "$work/next.deb"

unit=$(dpkg -L loghost | grep '/systemd/system/loghost.service$') || fail "no unit installed"
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
for wants in /etc/systemd/system/*.wants/loghost.service; do
    [ -e "$wants" ] && fail "the unit was enabled ($wants)"
done

# The service user's first steps with the example config: init creates its keys.
runuser -u loghost -- loghost init >/dev/null || fail "loghost init as the loghost user"
[ -s /etc/loghost/ledger.key ] && [ -s /etc/loghost/id_ed25519 ] || fail "init made no keys"
# The preflight on the example config: its hosts do not exist (exit 1, each named); run as
# root it says to run it as the service's user.
set +e
as_root=$(loghost check 2>&1); root_rc=$?
as_user=$(runuser -u loghost -- loghost check 2>&1); user_rc=$?
set -e
[ $root_rc -eq 1 ] && [ $user_rc -eq 1 ] || fail "check exits $root_rc/$user_rc: $as_user"
echo "$as_user" | grep -q "PROBLEM  cannot connect to web1.example.org" || fail "check: $as_user"
echo "$as_root" | grep -q "sudo -u loghost loghost check" || fail "check as root: $as_root"
echo "$as_user" | grep -q "checked as root" && fail "check as loghost: $as_user"
echo "# an edit" >> /etc/loghost/loghost.toml

# Remove: data, keys, user and the edited conffile stay.
dpkg -r loghost >/dev/null
[ ! -e /usr/bin/loghost ] || fail "dpkg -r left /usr/bin/loghost"
[ -d /var/lib/loghost ] && [ -s /etc/loghost/ledger.key ] || fail "dpkg -r removed data or keys"
grep -q "# an edit" /etc/loghost/loghost.toml || fail "dpkg -r lost the edited config"

# Purge: nothing is left but the system user.
dpkg -P loghost >/dev/null
for p in /var/lib/loghost /etc/loghost /usr/share/doc/loghost /usr/share/man/man1/loghost.1.gz \
         /usr/share/bash-completion/completions/loghost "$unit"; do
    [ ! -e "$p" ] || fail "dpkg -P left $p"
done
getent passwd loghost >/dev/null || fail "the system user should be kept (Debian practice)"
dpkg-statoverride --list | grep -q /etc/loghost && fail "dpkg -P left a stat override"
userdel loghost 2>/dev/null || true
echo "package test: ok ($deb)"
