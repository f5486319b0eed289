"""animegan: train a DCGAN on anime faces and sample new ones."""

import os

__version__ = "0.1.0"

# TensorFlow switches its oneDNN CPU kernels on by itself only on CPUs with AVX-512-class extensions;
# on an AVX2 CPU they train the default config ~1.4x faster than the fallback kernels
# (scripts/bench_train.py). Every animegan module imports TensorFlow after this line, so it takes
# effect; a value the user set wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
