#!/bin/bash
# Install every Debian package the lab needs; safe to run again.
#
# The daemons must never start in the root namespace: the lab starts its own
# copies inside network namespaces. apt's maintainer scripts call invoke-rc.d,
# which asks /usr/sbin/policy-rc.d first; exit code 101 means "not allowed".
set -euo pipefail

PACKAGES=(
    dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix apache2
    mariadb-server mariadb-client pdns-server pdns-backend-mysql
    openssh-server openssh-client socat dnsutils curl openssl rsync
    iproute2 util-linux
    monitoring-plugins-basic monitoring-plugins-standard percona-toolkit spfquery
    libvirt-clients libxml2-utils pciutils
    # the hostile-data self-test opens the HTML report in headless Chromium
    chromium
)

if [ "$(id -u)" -ne 0 ]; then
    echo "lab/install.sh: must run as root (it installs packages)" >&2
    exit 1
fi

POLICY=/usr/sbin/policy-rc.d
if ! [ -x "$POLICY" ] || ! grep -q 'exit 101' "$POLICY"; then
    printf '#!/bin/sh\n# Installed by cutover lab/install.sh: never start daemons.\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    echo "wrote $POLICY (exit 101)"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    # Only refresh the package lists when apt cannot find a candidate.
    if ! apt-get install -y --no-install-recommends --dry-run "${missing[@]}" >/dev/null 2>&1; then
        apt-get update
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "all ${#PACKAGES[@]} lab packages are installed"
fi

# Dovecot reads mail as a real, unprivileged user; the lab's accounts map to it.
if ! getent passwd vmail >/dev/null; then
    useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin vmail
    echo "created system user vmail"
fi
