# Edge Lab. Everything runs as root: Mininet builds network namespaces.
#   sudo make lab     install what is missing, then JupyterLab on the labs
#   sudo make test    install what is missing, then every test (lint included)
#   make quick        the pure unit tests, in seconds, without root
#   sudo make clean   remove whatever a crashed world left behind
#   make bench        the benchmarks (prints tables)
#   sudo make book    the textbook as a static site (results/book/_build/html)
#   sudo make bundle  everything an install needs, in bundle/, for a room without a network
PY := .venv/bin/python

.PHONY: setup lab test quick clean bench lock release book bundle

setup:
	@bash vagrant/provision.sh

lab: setup
	@bash vagrant/lab.sh

# Four pytest workers side by side: a chapter run mostly waits (tests/conftest.py).
test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 4 -m "not book and not timing" --durations=25
	$(PY) -m pytest -m "book or timing"

# The pure unit tests: seconds, no root (after a first `sudo make setup`).
quick:
	$(PY) -m pytest -m unit

book: setup
	$(PY) -m kit.nb.book

bundle: setup
	@bash vagrant/bundle.sh

clean:
	@$(PY) -m kit clean

# Every benchmark in bench/, in the chapters' order (each prints its own tables).
bench: setup
	$(PY) bench/world_bench.py
	$(PY) bench/edge_bench.py
	$(PY) bench/handlers_bench.py
	$(PY) bench/esi_bench.py
	$(PY) bench/cache_bench.py
	$(PY) bench/db_bench.py
	$(PY) bench/actor_bench.py
	$(PY) bench/iot_bench.py
	$(PY) bench/offline_bench.py
	$(PY) bench/pwa_bench.py
	$(PY) bench/classroom_bench.py
	$(PY) bench/notebook_bench.py

# Regenerate requirements.lock from requirements.in (then commit both).
lock: setup
	rm -rf /tmp/edgelab-lock && /usr/bin/python3 -m venv /tmp/edgelab-lock
	/tmp/edgelab-lock/bin/pip install -q -r requirements.in
	/tmp/edgelab-lock/bin/pip freeze > requirements.lock
	rm -rf /tmp/edgelab-lock
