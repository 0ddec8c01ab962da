"""``pispeaker bench``: latency, CPU and memory where users feel them, measured on this machine
against the Live API emulator and ALSA file PCMs (see README.md, "Benchmarks")."""
