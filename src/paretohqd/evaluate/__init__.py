"""Evaluation as pure computations over frames: collapse detection, the front and its metrics, the report, and
the comparison of several runs on one shared reference point."""
