"""tailmeter's benchmark driver: see tests/bench/README.md."""
