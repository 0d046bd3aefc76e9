# The Debian packages Edge Lab needs: provision.sh installs them, bundle.sh packs them.
# wrk: the PoP benchmark; vagrant: to validate the Vagrantfile; chromium: the browser
# the tests run every chapter in (Playwright drives it); the rest: Mininet's worlds,
# the IoT chapter's broker, a benchmark's nginx, Python.
PACKAGES="mininet iproute2 iputils-ping iperf curl ethtool procps util-linux
  mosquitto mosquitto-clients nginx-light python3 python3-venv python3-dev git make
  wrk vagrant chromium"
