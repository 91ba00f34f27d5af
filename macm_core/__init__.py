"""macm: a runnable Motion-Augmented Caption Model (M-ACM, arXiv 2510.24767).

The package holds the data pipeline, the two pathways, the model, the trainer, the
decoders (MSD among them) and the metrics; the notebooks in ``notebooks/`` and the book
built from them only call into it.
"""

__version__ = "0.1.0"
