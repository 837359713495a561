"""The canonical model and the pure rules: no I/O lives below this folder."""
