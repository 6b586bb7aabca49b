"""Stand-alone performance scripts (not part of the installed `pe_bench` package).

`throughput.py`: pre-training images/s of pe-bench's batched on-device pipeline against a
conventional per-sample torchvision DataLoader pipeline, per encoder x backbone.
`quality.py`: kNN and linear-probe accuracy of briefly pre-trained encoders against the same
architectures at random initialisation.
`scaling.py`: Ray's overhead per trial and the grid's wall time against concurrent trials,
on a suite run through the real engine.

Run them as scripts (`.venv/bin/python perf/throughput.py --help`); their `main(argv)`
functions are importable for tests.
"""
